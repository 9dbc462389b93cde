"""The desktop's routers, one module per feature; each is registered with one line in app.py."""
