"""The baseline for bench/webhook_ingest.py: a bare Flask endpoint that reads the body and
answers 200, served by the same gunicorn settings as the service."""

from flask import Flask, request


def create_app():
    app = Flask(__name__)

    @app.post("/webhooks/runware/<task_uuid>")
    def hook(task_uuid):
        request.get_data()
        return {"ok": True}

    return app
