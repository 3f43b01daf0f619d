"""castml's one web core: the lean ASGI app (`asgi`), the error contract (`errors`) and
its binding for Starlette and FastAPI apps (`starlette_errors`)."""
