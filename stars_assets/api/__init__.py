"""The member outreach HTTP API (FastAPI): `make api` or `python -m stars_assets.api`."""
