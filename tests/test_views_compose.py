"""The submit form /new: every parameter, errors by field, estimate, edit & re-run."""

import re
from html.parser import HTMLParser

import pytest

from protocol.schemas import SubmissionSchema
from archive import budget_store
from tests.history_helpers import deliver, make_task
from tests.views_helpers import app_config, catalogue, csrf, provider, text  # noqa: F401

SERVICE_SET = {"taskType", "taskUUID", "webhookURL", "includeCost", "uploadEndpoint"}


def form_names(page):
    return set(re.findall(r'<(?:input|select|textarea)[^>]* name="([^"]+)"', page))


def test_the_form_has_every_parameter_of_the_schema(client):
    page = text(client.get("/new"))
    names = form_names(page)
    for name, field in SubmissionSchema().fields.items():
        if name in SERVICE_SET:
            continue
        nested = getattr(field, "nested", None) or getattr(getattr(field, "inner", None), "nested", None)
        if nested is None:
            assert name in names, name
            continue
        prefix = "lora[0]" if name == "lora" else name
        for sub in nested().fields:
            assert f"{prefix}.{sub}" in names, f"{prefix}.{sub}"
    assert page.count("<details") == 5  # the advanced ones are folded
    assert "$0.0006" in page  # the estimate for the defaults


def post(client, **fields):
    """POST the form; a post that sent nothing redirects to its draft (post-redirect-get),
    which is followed, so the answer is the page the browser ends on."""
    data = {"csrf_token": csrf(client), "action": "send", **fields}
    response = client.post("/new", data=data)
    if response.status_code == 303 and "/new?draft=" in response.headers["Location"]:
        return client.get(response.headers["Location"])
    return response


def test_sending_a_task(client, catalogue, provider):
    response = post(client, positivePrompt="a lighthouse at dawn", width="1024", height="768",
                    steps="4", CFGScale="3.5", numberResults="2", seed="", label="me",
                    **{"acceleratorOptions.teaCache": "true", "lora[1].model": "civitai:1@2",
                       "lora[1].weight": "0.5", "safety.checkContent": "false"})
    assert response.status_code == 303, text(response)
    task_uuid = response.headers["Location"].rsplit("/", 1)[1]
    sent = provider.tasks()[0]
    assert sent["taskUUID"] == task_uuid
    assert (sent["width"], sent["height"], sent["CFGScale"], sent["numberResults"]) == (1024, 768, 3.5, 2)
    assert sent["acceleratorOptions"] == {"teaCache": True}
    assert sent["lora"] == [{"model": "civitai:1@2", "weight": 0.5}]
    assert sent["safety"] == {"checkContent": False}
    assert "seed" not in sent and "label" not in sent
    assert catalogue.get_task(task_uuid)["label"] == "me"


@pytest.mark.parametrize("fields,name,message", [
    ({"positivePrompt": "x"}, "positivePrompt", "between 2 and 3000"),
    ({"width": "1000"}, "width", "multiple of 16"),
    ({"steps": "four"}, "steps", "must be an integer"),
    ({"CFGScale": "nan"}, "CFGScale", "finite"),
    ({"steps": "4", "acceleratorOptions.cacheStartStep": "1",
      "acceleratorOptions.cacheEndStep": "9"}, "acceleratorOptions.cacheEndStep", "at most"),
    ({"lora[2].model": "civitai:1@2", "lora[2].weight": "9"}, "lora[2].weight", "between -4 and 4"),
    ({"lora[1].weight": "1"}, "lora[1].model", "is required"),
    ({"acceleratorOptions.fbCacheThreshold": "0.255"}, "acceleratorOptions.fbCacheThreshold",
     "in steps of 0.01"),
])
def test_errors_land_next_to_their_fields(client, provider, fields, name, message):
    response = post(client, **{"positivePrompt": "a harbor", **fields})
    assert response.status_code == 200 and response.request.path == "/new"
    page = text(response)
    error = re.search(rf'id="e-{re.escape(name)}">([^<]*)<', page)
    assert error and message in error[1], (name, page[page.find("field-error") - 300:][:600])
    assert 'aria-invalid="true"' in page
    assert provider.tasks() == []


def test_parameters_without_effect_are_noted_on_preview_and_after_sending(client, provider):
    fields = {"positivePrompt": "a harbor", "negativePrompt": "blurry", "ttl": "120",
              "outputType": "base64Data"}
    page = text(post(client, action="preview", **fields))
    assert "Note: ttl has no effect unless outputType is URL (it is base64Data)" in page
    assert "Note: negativePrompt is ignored when CFGScale is 1 or less" in page
    assert provider.tasks() == []
    response = post(client, **fields)
    assert response.status_code == 303, text(response)
    assert provider.tasks()[0]["ttl"] == 120
    detail = text(client.get(response.headers["Location"]))
    assert "Note: ttl has no effect" in detail
    assert "Note: ttl" not in text(client.get(response.headers["Location"]))  # shown once


def test_size_hints_give_no_range_no_source_gives(client):
    page = text(client.get("/new"))
    assert "128–2048" not in page and "Multiple of 16." in page


def test_values_survive_an_error(client, provider):
    page = text(post(client, positivePrompt="keep <this> prompt", width="1000"))
    assert "keep &lt;this&gt; prompt</textarea>" in page


def test_preview_shows_the_estimate_and_sends_nothing(client, provider):
    response = post(client, positivePrompt="a harbor", width="2048", height="2048", steps="8",
                    numberResults="3", action="preview")
    assert response.status_code == 200
    assert "$0.0144" in text(response)  # 4 MP at 8 steps: 8 units of $0.0006, × 3 images
    assert provider.tasks() == []


def test_estimate_api(client):
    body = client.get("/api/estimate?width=1024&height=1024&steps=4&numberResults=2").get_json()
    assert body == {"estimate": 0.0012, "perImage": 0.0006, "currency": "USD"}
    assert client.get("/api/estimate?width=big").status_code == 400


def test_edit_and_rerun_prefills_shows_the_diff_and_links(client, catalogue, provider):
    parent = make_task(catalogue, "a harbor at night", steps=4, CFGScale=2,
                       acceleratorOptions={"teaCache": True}, lora=[{"model": "civitai:1@2"}])
    deliver(catalogue, parent, 99)
    page = text(client.get(f"/new?from={parent}"))
    assert "a harbor at night</textarea>" in page
    assert 'name="seed" value="99"' in page  # the seed the image got
    assert 'name="lora[0].model" value="civitai:1@2"' in page
    assert f'name="parent" value="{parent}"' in page and 'data-parent="4"' in page

    preview = text(post(client, parent=parent, positivePrompt="a harbor at night", steps="8",
                        CFGScale="2", seed="99", action="preview",
                        **{"acceleratorOptions.teaCache": "true", "lora[0].model": "civitai:1@2"}))
    diff = re.search(r'<div class="diff-box".*?</div>', preview, re.S)[0]
    assert '<code class="field-name">steps</code>' in diff and '<code class="field-name">seed</code>' in diff
    assert "CFGScale" not in diff

    response = post(client, parent=parent, positivePrompt="a harbor at night", steps="8",
                    seed="99")
    child = response.headers["Location"].rsplit("/", 1)[1]
    row = catalogue.get_task(child)
    assert (row["parent_task_uuid"], row["rerun_mode"]) == (parent, "edit")
    assert provider.tasks()[-1]["steps"] == 8


def test_a_budget_refusal_shows_in_the_form(app, client, provider):
    budget_store.set_limits(app.extensions["catalogue"], "cli", daily="0.0001")
    response = post(client, positivePrompt="a harbor")
    assert response.request.path == "/new"
    page = text(response)
    assert "Not sent." in page and "budget" in page.lower()
    assert "a harbor</textarea>" in page
    assert provider.tasks() == []


def test_defaults_the_schema_fills_in_are_not_changes(client, catalogue):
    parent = make_task(catalogue, "a harbor", seed=5)
    page = text(post(client, parent=parent, positivePrompt="a harbor", seed="5",
                     action="preview"))
    diff = re.search(r'<div class="diff-box".*?</div>', page, re.S)[0]
    assert "None yet" in diff and "taskType" not in diff and "width" not in diff


class FormValues(HTMLParser):
    """What a browser would post from a page's form: every named input, select and
    textarea with its current value (the first button is left to the test)."""

    def __init__(self):
        super().__init__()
        self.values, self._select, self._textarea = {}, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("name"):
            self.values[attrs["name"]] = attrs.get("value") or ""
        elif tag == "select":
            self._select = attrs["name"]
            self.values[self._select] = ""
        elif tag == "option" and self._select and "selected" in attrs:
            self._option = True
        elif tag == "textarea":
            self._textarea = attrs["name"]
            self.values[self._textarea] = ""

    def handle_data(self, data):
        if self._textarea:
            self.values[self._textarea] += data
        elif self._select and getattr(self, "_option", False):
            self.values[self._select] = data
            self._option = False

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def form_values(page):
    parser = FormValues()
    parser.feed(page)
    return parser.values


FIVE_LORAS = [{"model": f"civitai:{n}@{n + 10}", "weight": round(0.1 * n, 2),
               "transformer": ("high", "low", "both")[n % 3]} for n in range(1, 6)]


def test_edit_and_rerun_carries_every_lora(client, catalogue, provider):
    parent = make_task(catalogue, "a harbor at night", seed=3, lora=FIVE_LORAS)
    page = text(client.get(f"/new?from={parent}"))
    values = form_values(page)
    for row, lora in enumerate(FIVE_LORAS):
        assert values[f"lora[{row}].model"] == lora["model"]
        assert values[f"lora[{row}].weight"] == str(lora["weight"])
        assert values[f"lora[{row}].transformer"] == lora["transformer"]
    assert values["lora[5].model"] == ""  # and an empty row for one more

    response = client.post("/new", data=dict(values, action="send"))
    assert response.status_code == 303, text(response)
    assert provider.tasks()[-1]["lora"] == FIVE_LORAS


def test_add_a_lora_row_renders_one_more_and_sends_nothing(client, provider):
    values = form_values(text(client.get("/new")))
    assert sorted(n for n in values if n.endswith(".model")) == [
        "lora[0].model", "lora[1].model", "lora[2].model"]
    values.update({"positivePrompt": "a harbor", "lora[0].model": "civitai:1@2",
                   "lora[1].model": "civitai:3@4", "lora[2].model": "civitai:5@6"})
    page = client.post("/new", data=dict(values, action="add-lora"), follow_redirects=True)
    assert page.status_code == 200 and provider.tasks() == []
    values = form_values(text(page))
    assert values["lora[2].model"] == "civitai:5@6"
    assert values["lora[3].model"] == "" and values["lora[4].model"] == ""
    values["lora[4].model"] = "civitai:7@8"  # a row with a gap before it is fine
    assert client.post("/new", data=dict(values, action="send")).status_code == 303
    assert [lora["model"] for lora in provider.tasks()[-1]["lora"]] == [
        "civitai:1@2", "civitai:3@4", "civitai:5@6", "civitai:7@8"]


EVERYTHING_WRONG = {
    "positivePrompt": "x", "width": "1000", "height": "5000", "steps": "four",
    "CFGScale": "lots", "numberResults": "50", "seed": "-1", "outputQuality": "5",
    "acceleratorOptions.cacheStartStep": "3", "acceleratorOptions.cacheEndStep": "2",
    "lora[1].model": "civitai:1@2", "lora[1].weight": "heavy", "safety.checkContent": "maybe",
}


def test_every_error_comes_in_one_round_beside_its_field_and_summed_up(client, provider):
    response = client.post("/new", data={"csrf_token": csrf(client), "action": "send",
                                         **EVERYTHING_WRONG})
    assert response.status_code == 303 and provider.tasks() == []
    page = text(client.get(response.headers["Location"]))
    beside = dict(re.findall(r'<p class="field-error" id="e-([^"]+)">([^<]*)</p>', page))
    assert set(beside) == set(EVERYTHING_WRONG) - {"acceleratorOptions.cacheStartStep",
                                                   "lora[1].model"}
    assert beside["steps"] == "must be an integer" and "number" in beside["CFGScale"]
    assert "between 1 and 20" in beside["numberResults"] and "16" in beside["height"]
    assert "greater than cacheStartStep" in beside["acceleratorOptions.cacheEndStep"]
    summary = re.search(r'<div class="notice notice-error error-summary"[^>]*>(.*?)</div>',
                        page, re.S)[1]
    assert f"{len(beside)} fields to fix" in summary
    links = re.findall(r'<a href="#f-([^"]+)">([^<]+)</a>', summary)
    assert {name for name, _ in links} == set(beside)
    assert ("numberResults", "Images") in links and ("CFGScale", "Guidance (CFG scale)") in links
    assert ("lora[1].weight", "LoRA 2: Weight") in links
    for name in beside:  # each link leads to a field of the page
        assert f'id="f-{name}"' in page, name
    assert "No estimate:" in page and "Images must be between 1 and 20" in page


def test_a_refused_post_redirects_and_a_reload_shows_the_same_without_posting(client, provider,
                                                                            catalogue):
    response = client.post("/new", data={"csrf_token": csrf(client), "action": "send",
                                         "positivePrompt": "keep this", "width": "1000"})
    location = response.headers["Location"]
    assert response.status_code == 303 and location.startswith("/new?draft=")
    shown = [re.findall(r'id="e-[^"]+">[^<]*|>keep this</textarea>', text(client.get(location)))
             for _ in range(2)]  # a reload shows the same, and posts nothing
    assert shown[0] == shown[1] == [">keep this</textarea>",
                                    'id="e-width">must be a multiple of 16']
    assert provider.tasks() == []
    assert catalogue.conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 0
    gone = text(client.get("/new?draft=nothing-here"))
    assert "no longer kept" in gone and 'id="f-positivePrompt"' in gone


def test_a_preview_redirects_too(client, provider):
    response = client.post("/new", data={"csrf_token": csrf(client), "action": "preview",
                                         "positivePrompt": "a harbor", "steps": "8"})
    assert response.status_code == 303
    page = text(client.get(response.headers["Location"]))
    assert "$0.0012" in page and 'name="steps" value="8"' in page and provider.tasks() == []


def test_labels_are_human_and_the_api_names_hints(client):
    page = text(client.get("/new"))
    labels = dict(re.findall(r'<label for="f-([^"]+)">([^<]+?) <code class="field-name">', page))
    assert labels["outputType"] == "Output type" and labels["CFGScale"] == "Guidance (CFG scale)"
    assert labels["numberResults"] == "Images" and labels["safety.checkContent"] == "Content check"
    assert labels["lora[0].weight"] == "Weight"
    assert all(label != name for name, label in labels.items() if "." not in name)


@pytest.mark.parametrize("query,parameter,label", [
    ("numberResults=50", "numberResults", "Images"),
    ("height=5000", "height", "Height"),
    ("steps=0", "steps", "Steps"),
    ("width=big", "width", "Width"),
])
def test_the_estimate_refuses_what_the_form_would(client, query, parameter, label):
    response = client.get(f"/api/estimate?{query}")
    assert response.status_code == 400
    errors = response.get_json()["errors"]
    assert [(e["parameter"], e["label"]) for e in errors] == [(parameter, label)]


def test_the_estimate_ignores_fields_it_does_not_price(client):
    body = client.get("/api/estimate?numberResults=3&positivePrompt=x&CFGScale=nan").get_json()
    assert body["estimate"] == 0.0018
