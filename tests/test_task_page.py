"""The task page as people read it: the prompt first with copy buttons, parameters grouped
under human labels (API names beside them, the archive's own fields only in the request
JSON, defaults said), every failure listed, and a timeline that folds repeated events."""

import html
import re

from tests.history_helpers import archive, deliver, make_task, picture
from tests.views_helpers import app_config, catalogue, provider, store, text  # noqa: F401


def table_of(page):
    """``[(group, [(label, api name, value, default?)])]`` of the parameter table."""
    table = re.search(r'<table class="data params params-grouped">(.*?)</table>', page, re.S)[1]
    groups = []
    for body in re.findall(r"<tbody>(.*?)</tbody>", table, re.S):
        head = re.search(r'scope="colgroup">([^<]+)</th>', body)[1]
        rows = []
        for label, name, value in re.findall(
                r'<span class="param-label"[^>]*>([^<]+)</span>(?: <code class="api-name">'
                r'([^<]+)</code>)?</th>\s*<td>(.*?)</td>', body, re.S):
            default = 'class="badge default"' in value
            value = html.unescape(re.sub(r"\s*<span.*", "", value, flags=re.S))
            rows.append((html.unescape(label), name, value, default))
        groups.append((html.unescape(head), rows))
    return groups


def test_parameters_are_grouped_under_human_labels_prompt_first(client, catalogue):
    task = make_task(catalogue, "a tidal library atrium", negativePrompt="blurry text",
                     CFGScale=3.5, steps=8, outputFormat="PNG", deliveryMethod="async",
                     lora=[{"model": "civitai:12345@678", "weight": 0.75}], label="client-a")
    page = text(client.get(f"/tasks/{task}"))
    groups = table_of(page)
    assert [g for g, _ in groups] == ["Prompt", "Size & output", "Sampling", "Safety", "Delivery"]
    prompt = groups[0][1]
    assert prompt[0][:3] == ("Prompt", "positivePrompt", "a tidal library atrium")
    rows = {name: (label, value, default) for _, group in groups for label, name, value, default in group}
    assert rows["CFGScale"] == ("Guidance (CFG scale)", "3.5", False)
    assert rows["outputFormat"] == ("Output format", "PNG", False)
    assert rows["lora[0]"][1] == "civitai:12345@678 · weight 0.75, transformer both"
    assert rows["label"][1] == "client-a" and rows[""][0] == "Provider"
    # The archive's own fields are in the request as sent, never in the table.
    for internal in ("taskType", "taskUUID", "includeCost", "webhookURL", "deliveryMethod"):
        assert internal not in rows, internal
        assert f'&#34;{internal}&#34;' in page or f'"{internal}"' in page, internal
    assert '<details class="request-json">' in page
    assert 'title="API name: CFGScale"' in page


def test_a_task_sent_with_defaults_shows_the_defaults(client, catalogue):
    task = make_task(catalogue, "a harbor at dawn")
    rows = {name: (value, default) for _, group in table_of(text(client.get(f"/tasks/{task}")))
            for _, name, value, default in group}
    assert rows["steps"] == ("4", True) and rows["CFGScale"] == ("0", True)
    assert rows["numberResults"] == ("1", True) and rows["outputFormat"] == ("JPG", True)
    assert rows["width"] == ("1024", False)  # sent (the schema fills it in before sending)
    assert rows["seed"][1] and rows["seed"][0].startswith("random")
    assert rows["scheduler"][0].startswith("the model's own") and rows["scheduler"][1]
    assert rows["safety.checkContent"] == ("off", True)


def test_a_sync_task_shows_its_delivery_method(client, catalogue):
    task = make_task(catalogue, "a harbor at dawn", deliveryMethod="sync")
    rows = {name: value for _, group in table_of(text(client.get(f"/tasks/{task}")))
            for _, name, value, _ in group}
    assert rows["deliveryMethod"] == "sync"


def test_copy_buttons_for_the_prompt_and_each_seed(client, catalogue, store):
    task = make_task(catalogue, "a lantern bazaar", negativePrompt="blurry", numberResults=2)
    first, second = deliver(catalogue, task, 18259, 40)
    page = text(client.get(f"/tasks/{task}"))
    assert '<h1 class="prompt-text" id="prompt">a lantern bazaar</h1>' in page
    assert 'data-copy="#prompt" hidden>Copy prompt</button>' in page
    assert 'data-copy="#negative-prompt"' in page
    for image, seed in ((first, 18259), (second, 40)):
        assert f'<code id="seed-{image}">{seed}</code>' in page
        assert f'data-copy="#seed-{image}"' in page


def test_every_failure_is_listed_with_a_placeholder_each(client, catalogue, store):
    task = make_task(catalogue, "ice harbor", numberResults=3)
    good = deliver(catalogue, task, 7)[0]
    archive(catalogue, store, good, picture(3))
    bad = ["1b0a8b7e-4a51-4d0e-9a8f-2d1e0c7b6a51", "1b0a8b7e-4a51-4d0e-9a8f-2d1e0c7b6a52"]
    for image, code in zip(bad, ("contentModerated", "timeoutProvider")):
        catalogue.ingest(task, errors=[{"code": code, "message": f"{code} said so",
                                        "taskUUID": task, "imageUUID": image}])
    page = text(client.get(f"/tasks/{task}"))
    banner = re.search(r'<div class="notice notice-error failures" role="alert">(.*?)</div>',
                       page, re.S)[1]
    assert "2 failures" in banner and "1 image stored" in banner
    for image, code in zip(bad, ("contentModerated", "timeoutProvider")):
        assert f'href="#image-{image}"' in banner and f"{code} said so" in banner
        placeholder = re.search(rf'<li class="image failed-image" id="image-{image}">(.*?)</li>',
                                page, re.S)[1]
        assert "placeholder-failed" in placeholder and f"{code} said so" in placeholder


def test_a_task_refused_before_any_image_says_its_own_error(client, catalogue):
    task = make_task(catalogue)
    catalogue.mark_failed(task, code="timeoutProvider", message="the provider timed out")
    banner = re.search(r'notice-error failures" role="alert">(.*?)</div>',
                       text(client.get(f"/tasks/{task}")), re.S)[1]
    assert "The task failed." in banner and "the provider timed out" in banner


def test_the_timeline_folds_repeated_events(client, catalogue, store):
    task = make_task(catalogue, "a copper aviary", numberResults=3)
    catalogue.mark_acknowledged(task, ack={"data": [{"taskUUID": task}]})
    for image in deliver(catalogue, task, 1, 2, 3):
        archive(catalogue, store, image, picture(1))
    page = text(client.get(f"/tasks/{task}"))
    timeline = re.search(r'<ol class="timeline">(.*)</section>', page, re.S)[1]
    summaries = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", s)).strip()
                 for s in re.findall(r"<summary>(.*?)</summary>", timeline, re.S)]
    assert [s.split(" 20")[0] for s in summaries] == ["3 × delivery accepted", "3 × archived"]
    assert timeline.count('<li class="event event-group') == 2
    assert timeline.count("/deliveries/") == 3  # each delivery still linked, inside
    assert "acknowledged by the provider" in timeline and "complete" in timeline
