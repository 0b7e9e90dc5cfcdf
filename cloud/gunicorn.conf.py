# Production settings for the aggregation service:
#   FEDWEAR_WORKERS=4 gunicorn -c cloud/gunicorn.conf.py "cloud.app:create_app(background=True)"
# Worker processes share nothing but the database and the data directory: a
# round's sum is kept as shards (a row each, their sums as files), an upload
# locks one shard, so N workers (on one host or several behind a proxy) add to
# one round at once. Each worker also runs a round ticker; they agree through
# row locks and status checks.
import os

bind = os.environ.get("FEDWEAR_BIND", "127.0.0.1:8080")  # TLS terminates in the reverse proxy in front
workers = int(os.environ.get("FEDWEAR_WORKERS", str(os.cpu_count() or 1)))
threads = int(os.environ.get("FEDWEAR_THREADS", "8"))
timeout = 300
graceful_timeout = 30
limit_request_line = 8190
accesslog = None  # the app logs one JSON line per request itself


def on_starting(server):
    """The schema (and SQLite's WAL mode) made once, before the workers start and open the database together."""
    from cloud.db import make_engine
    from cloud.settings import Settings

    settings = Settings.from_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    make_engine(settings.database_url).dispose()
