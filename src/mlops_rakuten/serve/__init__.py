"""Serving the DVC-built model: an authenticated FastAPI app (`rakuten serve`).

Routes: POST /token, POST /predict, GET /info, POST /ingest, POST /train,
GET /train/{id}, GET /health, GET /metrics. Settings come from the
environment (see ``settings``); nothing secret is read from the repository.
"""
