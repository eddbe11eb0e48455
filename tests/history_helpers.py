"""Helpers for the history tests: tasks recorded as submit() records them, results
delivered through the one ingest function, images put in the store as the fetcher does."""

import io
import uuid

from PIL import Image

from archive.catalogue import utcnow
from receiver.provider.submit import task_row

MODEL = "runware:twinflow-z-image-turbo@0"


def make_task(catalogue, prompt="a lighthouse at dawn", *, provider="sandbox", parent=None,
              rerun_mode=None, created_at=None, status=None, label=None, **params):
    """Record a task (as :func:`receiver.provider.submit.submit` does); returns its taskUUID."""
    task_uuid = str(uuid.uuid4())
    task = {"taskType": "imageInference", "taskUUID": task_uuid, "model": MODEL,
            "positivePrompt": prompt, "width": 1024, "height": 1024, "includeCost": True,
            "webhookURL": f"http://127.0.0.1:5000/webhooks/runware/{task_uuid}?token=secret",
            **params}
    row = task_row(task, provider=provider, parent=parent, rerun_mode=rerun_mode, label=label)
    if created_at:
        row["created_at"] = row["updated_at"] = created_at
    if status:
        row["status"] = status
    catalogue.create_task(row)
    return task_uuid


def deliver(catalogue, task_uuid, *seeds, cost=0.0006):
    """One delivery per seed through ``Catalogue.ingest``; returns the imageUUIDs."""
    made = []
    for seed in seeds:
        image_uuid = str(uuid.uuid4())
        catalogue.ingest(task_uuid, results=[{
            "taskType": "imageInference", "taskUUID": task_uuid, "imageUUID": image_uuid,
            "imageURL": f"https://im.runware.ai/image/ws/2/ii/{image_uuid}.jpg",
            "seed": seed, "cost": cost}], raw_body=b'{"data": []}')
        made.append(image_uuid)
    return made


def picture(seed=1, size=(256, 192), fmt="JPEG", **save):
    """A small picture (a different one per seed) encoded as ``fmt``."""
    image = Image.new("RGB", size)
    pixels = [((x * seed * 7) % 256, (y * 3 + seed * 40) % 256, ((x + y) * seed) % 256)
              for y in range(size[1]) for x in range(size[0])]
    image.putdata(pixels)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


def archive(catalogue, store, image_uuid, data):
    """Store ``data`` and mark the result archived, as the fetcher does; returns sha256."""
    stored = store.add_bytes(data)
    with catalogue.write() as conn:
        conn.execute(
            "UPDATE results SET archive_state = 'archived', sha256 = ?, file_ext = ?,"
            " file_size = ?, img_width = ?, img_height = ?, archived_at = ?"
            " WHERE image_uuid = ?",
            (stored.sha256, stored.ext, stored.size, stored.width, stored.height, utcnow(),
             image_uuid))
    return stored.sha256
