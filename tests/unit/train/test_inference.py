"""Inference on new text: adapters of different tasks and heads over one backbone, batched as one pass."""

from __future__ import annotations

import numpy as np
import pytest

from adapters import make_seed_adapters
from ipt_ray.backbone import load_backbone
from ipt_ray.config import BackboneConfig
from ipt_ray.train.inference import encode_records, ensemble_probabilities, load_adapters, probabilities

PAIRS = [{"premise": "a cat sat on the mat", "hypothesis": "a cat sat"}, {"premise": "it rained", "hypothesis": "dry"}]
SENTENCES = [{"sentence": "a great film"}, {"sentence": "dull and long"}, {"sentence": "fine"}]


@pytest.fixture(scope="module")
def mixed(tiny_backbones, tmp_path_factory):
    """A classifier adapter (rte) saved first and a verbalizer one (sst2), over the tiny MLM BERT."""
    path = tiny_backbones["bert-mlm"]
    backbone = load_backbone(BackboneConfig(name=str(path)), with_mlm_head=True)
    root = tmp_path_factory.mktemp("mixed")
    rte = make_seed_adapters(backbone, path, root / "rte", task="rte", seeds=(0,))
    sst2 = make_seed_adapters(backbone, path, root / "sst2", task="sst2", seeds=(1,),
                              method={"strategy": "prompt_tuning", "prompt_length": 3, "head": "verbalizer"})
    return {"rte": rte[0], "sst2": sst2[1]}


def test_a_verbalizer_adapter_after_a_classifier_one_gets_the_mlm_head(mixed):
    backbone, loaded = load_adapters(mixed)
    assert list(loaded) == ["rte", "sst2"] and backbone.mlm_head is not None
    assert loaded["sst2"].seed == 1 and loaded["rte"].text_fields == ("premise", "hypothesis")


def test_requests_of_two_tasks_in_one_pass_equal_each_alone(mixed):
    backbone, loaded = load_adapters(mixed)
    rte, sst2 = loaded["rte"], loaded["sst2"]
    requests = [(rte, encode_records(rte, backbone, PAIRS)), (sst2, encode_records(sst2, backbone, SENTENCES))]
    assert rte.pass_key == sst2.pass_key  # same injection and prompt length: one backbone pass
    together = probabilities(backbone, requests)
    assert [p.shape for p in together] == [(2, 2), (3, 2)]
    for request, probs in zip(requests, together):
        np.testing.assert_allclose(probs, probabilities(backbone, [request])[0], atol=1e-5)
        np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-6)


def test_ensemble_probabilities_in_batches_and_missing_fields(mixed):
    backbone, loaded = load_adapters({"rte": mixed["rte"]})
    rte = loaded["rte"]
    whole = ensemble_probabilities(backbone, [rte], PAIRS * 3, batch_size=64)
    np.testing.assert_allclose(ensemble_probabilities(backbone, [rte], PAIRS * 3, batch_size=2), whole, atol=1e-5)
    assert whole.shape == (1, 6, 2)
    with pytest.raises(ValueError, match=r"missing \['hypothesis'\]"):
        encode_records(rte, backbone, [{"premise": "only"}])


def test_records_are_tokenised_as_the_training_data_is(mixed):
    import datasets

    from ipt_ray.batches import encode

    backbone, loaded = load_adapters(mixed)
    for name, records in (("rte", PAIRS), ("sst2", SENTENCES)):
        adapter = loaded[name]
        dataset = datasets.Dataset.from_dict({**{f: [r[f] for r in records] for f in adapter.text_fields},
                                              "label": [0] * len(records)})
        trained = encode(dataset, adapter.spec, backbone.tokenizer, 64, name == "sst2").to_list()
        assert encode_records(adapter, backbone, records) == trained
