"""The OpenAI-compatible API (/v1/...) on the same service, engine and batcher as the native routes.

Kept import-free: the middleware imports `errors` from here, and the router pulls in the service.
"""
