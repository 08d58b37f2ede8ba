"""Tests that pin the method down, on tiny random backbones (seconds each)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ipt_ray.backbone import load_backbone
from ipt_ray.batches import Collator
from ipt_ray.config import BackboneConfig, MethodConfig
from ipt_ray.model import SeedGroup, build_adapter, build_context, count_trainable, parameter_report
from ipt_ray.batches import PromptedBatch
from ipt_ray.prompts.base import SOURCES, first_content_tokens

TEXTS = [
    "the movie was great and the acting was wonderful",
    "a terrible film",
    "yes no maybe the answer is true or false today",
]

# (strategy, extra method fields) covering every source and table layout
SOURCE_CASES = [
    ("prompt_tuning", {}),
    ("structured", {"hypernetwork": "linear"}),
    ("structured", {"hypernetwork": "lowrank"}),
    ("structured", {"hypernetwork": "mlp"}),
    ("random_ipt", {"table_layout": "full"}),
    ("random_ipt", {"table_layout": "compact"}),
    ("random_ipt", {"table_layout": "lowrank"}),
    ("pretrained_ipt", {"table_layout": "full"}),
    ("pretrained_ipt", {"table_layout": "compact"}),
    ("pretrained_ipt", {"table_layout": "lowrank"}),
    ("encoder_ipt", {"encoder": "cnn", "seq_util_rate": 0.5}),
    ("encoder_ipt", {"encoder": "rnn", "seq_util_rate": 0.5}),
    ("encoder_ipt", {"encoder": "mlp", "seq_util_rate": 0.5}),
]


def make_batch(backbone, texts, pair=None, labels=None) -> PromptedBatch:
    tok = backbone.tokenizer
    enc = tok(texts, pair, return_special_tokens_mask=True)
    rows = [{k: enc[k][i] for k in enc} | {"label": (labels or [0] * len(texts))[i]} for i in range(len(texts))]
    return Collator(tok.pad_token_id, backbone.uses_token_types)(rows)


def make_group(backbone, seeds=(0,), num_labels=3, **method):
    cfg = MethodConfig(**method)
    seen = torch.arange(backbone.vocab_size)[::2]
    ctx = build_context(cfg, backbone, num_labels, ["yes", "no", "maybe"], seen_token_ids=seen)
    adapters = [build_adapter(ctx, backbone, s) for s in seeds]
    return SeedGroup(backbone, adapters, list(seeds))


def train_step(group, batch):
    opt = torch.optim.SGD([p for p in group.parameters() if p.requires_grad], lr=0.5)
    logits = group([batch] * len(group.adapters))
    loss = sum(F.cross_entropy(lg, batch.labels) for lg in logits)
    loss.backward()
    opt.step()


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("injection", ["input", "prefix"])
@pytest.mark.parametrize("strategy,extra", SOURCE_CASES)
def test_training_step_changes_only_the_adapter(bert, strategy, extra, injection):
    group = make_group(bert, strategy=strategy, injection=injection, prompt_length=4, **extra)
    backbone_before = snapshot(bert.encoder)
    adapter_before = snapshot(group)
    trainable = {n for n, p in group.named_parameters() if p.requires_grad}
    batch = make_batch(bert, TEXTS, labels=[0, 1, 2])
    train_step(group, batch)
    for name, value in snapshot(bert.encoder).items():
        assert torch.equal(value, backbone_before[name]), f"backbone weight {name} changed"
    changed = {n for n, v in snapshot(group).items() if not torch.equal(v, adapter_before[n])}
    assert changed, "no trainable parameter moved"
    assert changed <= trainable, f"non-trainable state changed: {changed - trainable}"
    if strategy == "encoder_ipt":
        assert not any(n.startswith("adapters.0.source.table") for n in trainable)
        assert any(".source.encoder." in n for n in changed)


def test_fine_tuning_trains_its_own_backbone_copy(bert):
    group = make_group(bert, strategy="fine_tuning")
    shared_before = snapshot(bert.encoder)
    train_step(group, make_batch(bert, TEXTS, labels=[0, 1, 2]))
    assert all(torch.equal(v, shared_before[k]) for k, v in snapshot(bert.encoder).items())
    assert count_trainable(group.adapters[0]) > bert.num_parameters() * 0.9


def test_first_content_tokens_is_vectorised_and_exact():
    ids = torch.tensor([[101, 5, 6, 7, 102, 0], [101, 8, 102, 0, 0, 0]])
    content = torch.tensor([[0, 1, 1, 1, 0, 0], [0, 1, 0, 0, 0, 0]])
    got, mask = first_content_tokens(ids, content, 2)
    assert got.tolist() == [[5, 6], [8, 0]] and mask.tolist() == [[1, 1], [1, 0]]
    got, mask = first_content_tokens(ids, content, torch.tensor([3, 1]))
    assert got.tolist() == [[5, 6, 7], [8, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def _prompts(group, batch):
    return group.adapters[0].source(batch)


def test_random_ipt_prompt_is_the_rows_of_the_first_k_tokens(bert):
    k = 3
    group = make_group(bert, strategy="random_ipt", table_layout="full", prompt_length=k)
    base = make_batch(bert, ["the movie was great and wonderful", "a terrible film"])
    prompts, mask = _prompts(group, base)
    assert prompts.shape == (2, k, bert.hidden_size)
    # rows equal the table rows of the first k content tokens
    first = first_content_tokens(base.input_ids, base.content_mask, k)[0]
    table = group.adapters[0].source.table
    assert torch.allclose(prompts[0], table(first[0]))
    # changing a token after the k-th leaves the prompt alone; changing one inside changes it
    later = make_batch(bert, ["the movie was bad and boring", "a terrible film"])
    inside = make_batch(bert, ["a movie was great and wonderful", "a terrible film"])
    same = _prompts(group, later)[0]
    assert torch.equal(same[0], prompts[0])
    assert not torch.equal(_prompts(group, inside)[0][0], prompts[0])
    # the other instance never affects this one
    other = make_batch(bert, ["the movie was great and wonderful", "yes no maybe"])
    assert torch.equal(_prompts(group, other)[0][0], prompts[0])
    # a short input gets masked prompt positions
    short = make_batch(bert, ["film"])
    assert _prompts(group, short)[1].tolist() == [[1, 0, 0]]


@pytest.mark.parametrize("encoder", ["cnn", "rnn", "mlp"])
@pytest.mark.parametrize("rate", [0.3, 0.5, 1.0])
def test_encoder_ipt_reads_exactly_the_first_ceil_rn_tokens(bert, encoder, rate):
    group = make_group(bert, strategy="encoder_ipt", encoder=encoder, seq_util_rate=rate, prompt_length=2)
    group.eval()
    words = "the movie was great and the acting was wonderful today".split()
    batch = make_batch(bert, [" ".join(words)])
    n = int(batch.content_mask.sum())
    m = max(1, math.ceil(rate * n))
    assert int(group.adapters[0].source.read_lengths(batch.content_mask)[0]) == m
    ids = batch.input_ids[0].tolist()
    content_positions = [i for i, c in enumerate(batch.content_mask[0].tolist()) if c]
    base = _prompts(group, batch)[0]
    replacement = bert.tokenizer.convert_tokens_to_ids("yes")

    def with_token(pos):
        changed = list(ids)
        changed[pos] = replacement
        return PromptedBatch(input_ids=torch.tensor([changed]), attention_mask=batch.attention_mask,
                             content_mask=batch.content_mask, token_type_ids=batch.token_type_ids)

    if m < n:  # the first unread token (and every later one) does not matter
        for pos in content_positions[m:]:
            assert torch.allclose(_prompts(group, with_token(pos))[0], base, atol=1e-6)
    # what the encoder reads: exactly the table rows of the first m content tokens (an output check would
    # not do: the TextCNN's ReLU and max-pooling may absorb one changed token)
    source = group.adapters[0].source
    seen = {}
    hook = source.encoder.register_forward_hook(lambda mod, args, out: seen.update(rows=args[0], mask=args[1]))
    try:
        _prompts(group, batch)
    finally:
        hook.remove()
    first = torch.tensor([ids[i] for i in content_positions[:m]])
    assert seen["mask"][0].sum().item() == m and bool(seen["mask"][0, :m].all())
    assert torch.equal(seen["rows"][0, :m], source.table[first])


@pytest.mark.parametrize("backbone_name", ["bert", "roberta"])
@pytest.mark.parametrize("injection", ["input", "prefix"])
@pytest.mark.parametrize("strategy,extra", [("random_ipt", {"table_layout": "full"}), ("prompt_tuning", {}),
                                            ("encoder_ipt", {"encoder": "cnn"}), ("fine_tuning", {})])
def test_padding_of_prompt_and_input_does_not_change_the_output(tiny_backbones, backbone_name, injection, strategy, extra):
    backbone = load_backbone(BackboneConfig(name=str(tiny_backbones[backbone_name])))
    group = make_group(backbone, strategy=strategy, injection=injection, prompt_length=5, **extra).eval()
    short = "a terrible film"  # 3 content tokens < k: Random IPT masks prompt positions
    alone = group([make_batch(backbone, [short])])[0]
    padded = group([make_batch(backbone, [short, "the movie was great and the acting was wonderful today"])])[0]
    assert torch.allclose(alone[0], padded[0], atol=1e-5)


def test_zero_length_prompt_reproduces_the_plain_backbone(bert):
    group = make_group(bert, strategy="random_ipt", injection="input", prompt_length=0).eval()
    batch = make_batch(bert, TEXTS)
    adapter = group.adapters[0]
    hidden = adapter.injection.run(bert.encoder, batch, adapter.prompt_state(batch), bert.position_offset)
    plain = bert.encoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                         token_type_ids=batch.token_type_ids).last_hidden_state
    real = batch.attention_mask.bool()  # padding positions carry no meaning in either
    assert torch.allclose(hidden[real], plain[real], atol=1e-6)


def test_prefix_injection_changes_every_layers_attention(bert):
    group = make_group(bert, strategy="prompt_tuning", injection="prefix", prompt_length=3).eval()
    adapter = group.adapters[0]
    batch = make_batch(bert, TEXTS[:2])
    kv, mask = adapter.prompt_state(batch)
    outputs: list[torch.Tensor] = []
    hooks = [layer.register_forward_hook(lambda m, i, o: outputs.append(o[0] if isinstance(o, tuple) else o))
             for layer in bert.encoder.encoder.layer]

    def layer_outputs(state):
        outputs.clear()
        adapter.injection.run(bert.encoder, batch, state, bert.position_offset)
        return list(outputs)

    base = layer_outputs((kv, mask))
    no_prefix = layer_outputs((kv, torch.zeros_like(mask)))
    L = bert.num_layers
    for layer in range(L):
        assert not torch.allclose(base[layer], no_prefix[layer], atol=1e-5), f"layer {layer} ignores the prefix"
        # perturbing only this layer's keys/values changes this layer's output and none before it
        blocks = kv.view(kv.shape[0], kv.shape[1], 2 * L, -1).clone()
        blocks[:, :, 2 * layer : 2 * layer + 2] += 1.0
        out = layer_outputs((blocks.view_as(kv), mask))
        for earlier in range(layer):
            assert torch.equal(out[earlier], base[earlier])
        assert not torch.allclose(out[layer], base[layer], atol=1e-5)
    for h in hooks:
        h.remove()


@pytest.mark.parametrize("injection", ["input", "prefix"])
@pytest.mark.parametrize("strategy,extra", SOURCE_CASES + [("fine_tuning", {})])
def test_reported_trainable_count_equals_parameters_with_gradients(bert, strategy, extra, injection):
    if strategy == "fine_tuning" and injection == "prefix":
        pytest.skip("fine-tuning has no injection")
    group = make_group(bert, strategy=strategy, injection=injection, prompt_length=4, **extra)
    batch = make_batch(bert, TEXTS, labels=[0, 1, 2])
    loss = F.cross_entropy(group([batch])[0], batch.labels)
    loss.backward()
    with_grad = sum(p.numel() for p in group.adapters[0].parameters() if p.grad is not None)
    report = parameter_report(group.adapters[0], bert)
    assert report["trainable_params"] == with_grad
    assert report["trainable_pct"] == pytest.approx(100 * with_grad / bert.num_parameters())


def test_table_layouts_have_the_documented_sizes(bert):
    V, d, r = bert.vocab_size, bert.hidden_size, 8
    sizes = {}
    for layout in ("full", "compact", "lowrank"):
        group = make_group(bert, strategy="random_ipt", table_layout=layout, table_rank=r, prompt_length=4)
        sizes[layout] = count_trainable(group.adapters[0].source)
    seen = len(torch.arange(V)[::2])
    assert sizes == {"full": V * d, "compact": (seen + 1) * d, "lowrank": V * r + r * d}


def test_compact_table_maps_unseen_ids_to_one_shared_row(bert):
    group = make_group(bert, strategy="random_ipt", table_layout="compact", prompt_length=2)
    table = group.adapters[0].source.table
    odd = torch.tensor([1, 3, 5])  # the fixture saw even ids only
    assert torch.equal(table(odd)[0], table(odd)[1])
    assert not torch.equal(table(torch.tensor([0]))[0], table(torch.tensor([2]))[0])


@pytest.mark.parametrize("name", ["bert-mlm", "roberta-mlm"])
def test_verbalizer_head_reads_label_words_at_the_mask(tiny_backbones, name):
    backbone = load_backbone(BackboneConfig(name=str(tiny_backbones[name])), with_mlm_head=True)
    group = make_group(backbone, strategy="random_ipt", head="verbalizer", prompt_length=3).eval()
    text = f"the movie was great {backbone.tokenizer.mask_token} today"
    batch = make_batch(backbone, [text])
    logits = group([batch])[0]
    adapter = group.adapters[0]
    hidden = adapter.injection.run(backbone.encoder, batch, adapter.prompt_state(batch), backbone.position_offset)
    pos = int((batch.input_ids[0] == backbone.tokenizer.mask_token_id).nonzero()[0])
    full = backbone.mlm_head(hidden[:, pos])
    assert torch.allclose(logits, full[:, adapter.head.label_word_ids])
    assert count_trainable(adapter.head) == 0


def test_verbalizer_refuses_a_backbone_without_mlm_head(tiny_backbones):
    from ipt_ray.backbone import BackboneError

    with pytest.raises(BackboneError, match="no pretrained MLM head"):
        load_backbone(BackboneConfig(name=str(tiny_backbones["bert"])), with_mlm_head=True)


def test_every_builtin_source_is_covered():
    builtin = {name for name, cls in SOURCES.items() if cls.__module__.startswith("ipt_ray.")}  # not test plugins
    assert {s for s, _ in SOURCE_CASES} | {"ppt"} == builtin


def test_batched_and_sequential_seed_groups_agree(bert):
    group = make_group(bert, seeds=(0, 1, 2), strategy="random_ipt", injection="prefix", prompt_length=4).eval()
    batches = [make_batch(bert, TEXTS[i:i + 2]) for i in range(3)]
    seq = group(batches, batched=False)
    bat = group(batches, batched=True)
    for a, b in zip(seq, bat):
        assert torch.allclose(a, b, atol=1e-5)


def test_random_ipt_starts_from_a_random_table_and_pretrained_ipt_from_embeddings(bert):
    emb = bert.word_embeddings.weight
    random_table = make_group(bert, strategy="random_ipt", table_layout="full").adapters[0].source.table.rows.weight
    pretrained = make_group(bert, strategy="pretrained_ipt", table_layout="full").adapters[0].source.table.rows.weight
    assert torch.equal(pretrained, emb)
    assert not torch.allclose(random_table, emb)
    assert random_table.std().item() == pytest.approx(emb.std().item(), rel=0.1)  # same scale, other values


def test_mean_classifier_reads_the_mean_of_the_valid_input_tokens(bert):
    group = make_group(bert, seeds=(0, 1), strategy="prompt_tuning", head="mean_classifier", prompt_length=3).eval()
    batch = make_batch(bert, TEXTS[:2])  # two lengths: the shorter row is padded
    adapter = group.adapters[0]
    hidden = adapter.injection.run(bert.encoder, batch, adapter.prompt_state(batch), bert.position_offset)
    for row in range(2):
        n = int(batch.attention_mask[row].sum())
        expected = adapter.head.linear(hidden[row, :n].mean(dim=0))
        assert torch.allclose(group([batch, batch])[0][row], expected, atol=1e-5)
    padded = hidden.clone()
    padded[batch.attention_mask == 0] = 1e3  # what padding positions hold must not matter
    assert torch.allclose(adapter.head(padded, batch, None), adapter.head(hidden, batch, None), atol=1e-5)
    batches = [batch, make_batch(bert, TEXTS[1:])]  # the batched pass pads both to the longest row
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(group(batches), group(batches, batched=True)))
