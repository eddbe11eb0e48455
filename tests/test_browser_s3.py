"""The pages with the images in a bucket, in Chromium: every thumbnail on the gallery and
a task page is a /thumbs/ redirect to a presigned GET of the bucket (moto's S3 server on
loopback), which the pages' CSP must allow and nothing else; at 1366 and 390 px."""

import pytest

from tests.browser_support import DESKTOP, PHONE, open_page, shoot
from tests.s3server import bucket, s3_endpoint  # noqa: F401 - fixtures
from tests.test_archive_e2e import archived, submit, wait_until

pytestmark = pytest.mark.browser

LOADED = """() => Array.from(document.querySelectorAll('img[src]')).map(
    img => [img.currentSrc, img.complete && img.naturalWidth > 0])"""


@pytest.fixture
def app_config(app_config, s3_endpoint, bucket):
    return dict(app_config, RUNWARE_ARCHIVE_STORAGE=f"s3://{bucket}/archive",
                RUNWARE_ARCHIVE_S3_ENDPOINT=s3_endpoint, RUNWARE_SANDBOX_RESULT_DELAY=0.01)


def every_image(page):
    """``[(src, loaded)]`` of every image, each scrolled into view first (they are lazy)."""
    images = page.locator("img[src]")
    for i in range(images.count()):
        images.nth(i).scroll_into_view_if_needed()
    page.wait_for_load_state("networkidle")
    found = page.evaluate(LOADED)
    page.evaluate("window.scrollTo(0, 0)")
    return found


def test_gallery_and_task_page_show_images_from_the_bucket(browser, live_server, fetcher):
    url = live_server.url
    tasks = [submit(url, numberResults=2, outputFormat=fmt, seed=seed)
             for fmt, seed in (("JPG", 7), ("PNG", 8), ("WEBP", 9))]
    for task_uuid in tasks:
        assert wait_until(lambda: archived(url, task_uuid))
    for name, viewport in (("s3-gallery-1366", DESKTOP), ("s3-gallery-390", PHONE)):
        page = open_page(browser, viewport)
        page.goto(f"{url}/")
        images = every_image(page)
        assert len(images) >= 6 and all(ok for _, ok in images), [i for i in images if not i[1]]
        assert all("/thumbs/" in src for src, _ in images)
        assert page.console_errors == []  # no CSP refusal of the bucket's origin
        shoot(page, name)
        page.goto(f"{url}/tasks/{tasks[0]}")
        images = every_image(page)
        assert images and all(ok for _, ok in images), images
        assert page.console_errors == []
        shoot(page, name.replace("gallery", "task"))
        page.context.close()
