"""The serving logic without Ray: requests checked (4xx), adapters of two tasks batched in one call."""

from __future__ import annotations

import json

import numpy as np
import pytest

from adapters import make_seed_adapters
from ipt_ray.serve import default_name, named_adapters
from ipt_ray.serve.service import AdapterService, Limits, RequestError
from ipt_ray.train.inference import encode_records, load_adapters, probabilities


@pytest.fixture(scope="module")
def service(bert, tiny_bert, tmp_path_factory) -> AdapterService:
    root = tmp_path_factory.mktemp("adapters")
    rte = make_seed_adapters(bert, tiny_bert, root / "rte", task="rte", seeds=(0,))
    sst2 = make_seed_adapters(bert, tiny_bert, root / "sst2", task="sst2", seeds=(3,))
    return AdapterService.load({"rte": rte[0], "sst2": sst2[3]}, Limits(max_texts=4, max_chars=50))


def body(**fields) -> bytes:
    return json.dumps(fields).encode()


def test_listing_names_tasks_fields_and_labels(service):
    listed = {a["name"]: a for a in service.listing()["adapters"]}
    assert listed["rte"]["text_fields"] == ["premise", "hypothesis"] and listed["sst2"]["seed"] == 3
    assert listed["sst2"]["labels"] == ["negative", "positive"]


def test_two_adapters_in_one_batch_answer_as_each_alone(service):
    items = [service.parse(body(adapter="rte", texts=[["a cat sat", "a cat"], {"premise": "x y", "hypothesis": "z"}])),
             service.parse(body(adapter="sst2", texts=["a great film"]))]
    answers = service.predict_batch(items)
    assert [a["adapter"] for a in answers] == ["rte", "sst2"] and len(answers[0]["predictions"]) == 2
    assert service.stats.as_json()["mixed_adapter_batches"] == 1
    for item, got in zip(items, answers):
        alone = probabilities(service.backbone, [(item.adapter, encode_records(item.adapter, service.backbone,
                                                                               item.records))])[0]
        probs = np.array([[p["probs"][c] for c in item.adapter.label_names] for p in got["predictions"]])
        np.testing.assert_allclose(probs, alone, atol=1e-5)


@pytest.mark.parametrize("raw, status, message", [
    (b"{not json", 400, "not JSON"),
    (body(adapter="nope", texts=["x"]), 404, "unknown adapter 'nope'"),
    (body(adapter="sst2", texts=[]), 422, "non-empty list"),
    (body(adapter="sst2", texts=["  "]), 422, "non-empty string"),
    (body(adapter="sst2", texts=["x" * 51]), 413, "at most 50"),
    (body(adapter="sst2", texts=["x"] * 5), 413, "at most 4"),
    (body(adapter="sst2", text=["x"]), 422, 'fields "adapter" and "texts"'),
    (body(adapter="rte", texts=["only one"]), 422, "reads 2 text(s)"),
    (body(adapter="rte", texts=[{"premise": "a"}]), 422, "expected fields"),
    (body(adapter="sst2", texts=[3]), 422, "reads 1 text(s)"),
    (body(adapter="rte", texts=[["a", 3]]), 422, "non-empty string"),
    (b"[1, 2]", 422, "got list"),
])
def test_bad_requests_are_4xx_with_a_message(service, raw, status, message):
    with pytest.raises(RequestError) as err:
        service.parse(raw)
    assert err.value.status == status and message in err.value.message


def test_named_adapters(tmp_path, bert, tiny_bert):
    make_seed_adapters(bert, tiny_bert, tmp_path / "run", seeds=(0, 1))
    assert sorted(named_adapters([str(tmp_path / "run")])) == ["run/seed_0", "run/seed_1"]
    assert list(named_adapters([f"mine={tmp_path / 'run' / 'seed_1'}"])) == ["mine"]
    assert default_name("models:/rte/2") == "rte-v2"
    with pytest.raises(ValueError, match="two adapters named"):
        named_adapters([f"a={tmp_path / 'run' / 'seed_0'}", f"a={tmp_path / 'run' / 'seed_1'}"])
