"""The Stars dashboard: a Streamlit app over the published Delta Lake tables (`make dashboard`).

Data shaping lives in `data` (plain functions, no Streamlit); `ui` holds the Streamlit helpers the
pages share; `app` is the entry point with the page navigation; `views/` one script per page.
"""
