"""`autopilot serve`: the web dashboard (app: the WSGI application and its pages; server: the threaded
stdlib server it runs in) and the Prometheus metrics it and the runner serve (metrics)."""
