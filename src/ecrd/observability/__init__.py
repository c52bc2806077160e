"""What the operator sees: health and readiness, the home page, metrics and the logs.

health.py      GET /healthz (the process answers) and GET /readyz (its stores answer)
home.py        GET /: where the API, the registry, the gallery and these endpoints are
metrics.py     the Prometheus metrics, their label series, GET /metrics
middleware.py  per request: its id, its metrics and its access-log line
access_log.py  the access-log entry and how its path is made safe to log
log_config.py  the logging setup: text or JSON lines, the TLS-probe filter
"""
