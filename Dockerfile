# ttrpg worker image (and, as the `dashboard` target, an rq-dashboard for the same Redis).
#
#   docker build -t ttrpg-worker .                        # the worker (default, last stage)
#   docker build --target dashboard -t ttrpg-dashboard .
#
# The worker runs exec-form as PID 1, so `docker stop` delivers SIGTERM to it: it finishes
# the job in flight and exits 0. Give it a stop timeout above the job timeout (90 s):
# compose's stop_grace_period, or `docker stop -t 180`.
FROM python:3.11-slim AS base

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY ttrpg ./ttrpg
COPY workers ./workers
RUN pip install . && rm -rf /src

RUN useradd --system --user-group --uid 10001 --create-home --home-dir /home/ttrpg ttrpg
WORKDIR /home/ttrpg


FROM base AS dashboard
# rq-dashboard 0.9 works with rq 3.0 but imports six without declaring it.
RUN pip install "rq-dashboard>=0.9" six
USER 10001:10001
EXPOSE 9181
CMD ["rq-dashboard", "--bind", "0.0.0.0", "--port", "9181"]


FROM base AS worker
USER 10001:10001
STOPSIGNAL SIGTERM
CMD ["ttrpg", "worker"]
