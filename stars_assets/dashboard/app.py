"""Entry point: page configuration and navigation. Each page is a script under views/."""

from pathlib import Path

import streamlit as st

PAGES_DIR = Path(__file__).resolve().parent / "views"  # not "pages": that name turns on Streamlit's older automatic navigation
# (script, title, URL path): the URL path makes each page linkable, e.g. http://127.0.0.1:8501/outlook;
# the first page is the app's root (Streamlit serves the default page at "/" only).
PAGES = [
    ("campaign.py", "Campaign effectiveness", ""),
    ("care_gaps.py", "Care-gap closure", "care_gaps"),
    ("outlook.py", "Contract outlook", "outlook"),
    ("predictor.py", "Predictor", "predictor"),
    ("quality.py", "Data quality", "quality"),
]

st.set_page_config(page_title="Stars dashboard", layout="wide")
st.navigation(
    [
        st.Page(PAGES_DIR / script, title=title, url_path=url or None, default=index == 0)
        for index, (script, title, url) in enumerate(PAGES)
    ]
).run()
