# Production settings for the aggregation service:
#   gunicorn -c cloud/gunicorn.conf.py "cloud.app:create_app(background=True)"
# One worker process with threads: uploads to a round are serialised by the
# database anyway, and one process runs one round ticker.
bind = "127.0.0.1:8080"  # TLS terminates in the reverse proxy in front
workers = 1
threads = 16
timeout = 300
graceful_timeout = 30
limit_request_line = 8190
accesslog = None  # the app logs one JSON line per request itself
