"""The paper's method options on tiny backbones: prefix_projection none, the task-level prompt, hard prompts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ipt_ray.batches import Collator, PromptedBatch
from ipt_ray.config import MethodConfig
from ipt_ray.model import SeedGroup, build_adapter, build_context, count_trainable, parameter_report
from ipt_ray.prompts.base import first_content_tokens

TEXTS = [
    "the movie was great and the acting was wonderful",
    "a terrible film",
    "yes no maybe the answer is true or false today",
]
HARD = "Human Activities"

# every source that can emit 2 * layers * d wide prompts (token tables: from a random table only)
WIDE_CASES = [
    ("prompt_tuning", {}),
    ("prompt_tuning", {"prompt_init": "random"}),
    ("structured", {"hypernetwork": "linear"}),
    ("structured", {"hypernetwork": "lowrank"}),
    ("structured", {"hypernetwork": "mlp"}),
    ("random_ipt", {"table_layout": "full"}),
    ("random_ipt", {"table_layout": "compact"}),
    ("random_ipt", {"table_layout": "lowrank"}),
    ("random_ipt", {"table_layout": "compact", "hard_prompt": HARD}),
    ("pretrained_ipt", {"table_layout": "compact", "table_init": "random"}),
    ("encoder_ipt", {"encoder": "cnn"}),
    ("encoder_ipt", {"encoder": "rnn"}),
    ("encoder_ipt", {"encoder": "mlp"}),
]


def make_batch(backbone, texts, labels=None) -> PromptedBatch:
    tok = backbone.tokenizer
    enc = tok(texts, return_special_tokens_mask=True)
    rows = [{k: enc[k][i] for k in enc} | {"label": (labels or [0] * len(texts))[i]} for i in range(len(texts))]
    return Collator(tok.pad_token_id, backbone.uses_token_types)(rows)


def make_group(backbone, seeds=(0,), **method) -> SeedGroup:
    seen = torch.arange(backbone.vocab_size)[::2]
    ctx = build_context(MethodConfig(**method), backbone, 3, ["yes", "no", "maybe"], seen_token_ids=seen)
    return SeedGroup(backbone, [build_adapter(ctx, backbone, s) for s in seeds], list(seeds))


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def loss_of(group, batch):
    return sum(F.cross_entropy(lg, batch.labels) for lg in group([batch] * len(group.adapters)))


# ---------------------------------------------------------------- prefix_projection: none


@pytest.mark.parametrize("strategy,extra", WIDE_CASES)
def test_without_projection_every_source_emits_every_layers_keys_and_values(bert, strategy, extra):
    group = make_group(bert, strategy=strategy, injection="prefix", prefix_projection="none", prompt_length=3, **extra)
    adapter = group.adapters[0]
    assert adapter.injection.mlp is None
    batch = make_batch(bert, TEXTS, labels=[0, 1, 2])
    prompts, mask = adapter.source(batch)
    width = 2 * bert.num_layers * bert.hidden_size
    assert prompts.shape == (3, adapter.source.length, width) and mask.shape == (3, adapter.source.length)
    kv, _ = adapter.prompt_state(batch)
    assert torch.equal(kv, prompts)  # only reshaped by run(), never projected
    # one SGD step: gradients reach the source and the head, never the frozen backbone
    backbone_before, adapter_before = snapshot(bert.encoder), snapshot(group)
    params = [p for p in group.parameters() if p.requires_grad]
    loss_of(group, batch).backward()
    torch.optim.SGD(params, lr=0.5).step()
    assert all(torch.equal(v, backbone_before[k]) for k, v in snapshot(bert.encoder).items())
    changed = {n for n, v in snapshot(group).items() if not torch.equal(v, adapter_before[n])}
    assert any(".source." in n for n in changed) and any(".head." in n for n in changed)
    assert not any(".injection." in n for n in snapshot(group))  # nothing to train in the injection
    report = parameter_report(adapter, bert)
    assert report["trainable_params"] == sum(p.numel() for p in adapter.parameters() if p.grad is not None)


def test_prefix_tuning_without_projection_has_k_times_2_layers_d_prompt_parameters(bert):
    k, d, layers, labels = 5, bert.hidden_size, bert.num_layers, 3
    adapter = make_group(bert, strategy="prompt_tuning", injection="prefix", prefix_projection="none",
                         prompt_length=k).adapters[0]
    assert count_trainable(adapter.source) == k * 2 * layers * d
    assert count_trainable(adapter.injection) == 0
    assert parameter_report(adapter, bert)["trainable_params"] == k * 2 * layers * d + (d * labels + labels)
    with_mlp = make_group(bert, strategy="prompt_tuning", injection="prefix", prompt_length=k,
                          prefix_hidden=7).adapters[0]
    assert count_trainable(with_mlp.injection) == (d * 7 + 7) + (7 * 2 * layers * d + 2 * layers * d)


def test_without_projection_equals_the_mlp_model_given_the_mlp_output(bert):
    """Prefix Tuning without the MLP, its prompt set to MLP(P) of a model with it, gives the same logits."""
    batch = make_batch(bert, TEXTS)
    with_mlp = make_group(bert, strategy="prompt_tuning", injection="prefix", prompt_length=4).eval()
    without = make_group(bert, strategy="prompt_tuning", injection="prefix", prefix_projection="none",
                         prompt_length=4).eval()
    reference, plain = with_mlp.adapters[0], without.adapters[0]
    with torch.no_grad():
        plain.source.prompt.copy_(reference.injection.mlp(reference.source.prompt))
        plain.head.load_state_dict(reference.head.state_dict())
        assert torch.allclose(plain(bert, batch), reference(bert, batch), atol=1e-6)


@pytest.mark.parametrize("injection,projection,width", [("input", "mlp", 1), ("input", "none", 1),
                                                        ("prefix", "mlp", 1), ("prefix", "none", None)])
def test_prompt_width_follows_injection_and_projection(bert, injection, projection, width):
    ctx = build_context(MethodConfig(strategy="prompt_tuning", injection=injection, prefix_projection=projection),
                        bert, 2)
    d = bert.hidden_size
    assert ctx.prompt_width == (d if width else 2 * bert.num_layers * d)


def test_a_source_of_the_wrong_width_is_named_at_the_injection(bert):
    adapter = make_group(bert, strategy="prompt_tuning", injection="prefix", prefix_projection="none").adapters[0]
    with pytest.raises(ValueError, match=r"prefix_projection 'none' needs prompts of width 2 \* layers \* d"):
        adapter.injection.prepare(torch.zeros(1, 2, bert.hidden_size), torch.ones(1, 2))


def test_ppt_prompt_of_width_d_is_refused_without_projection(bert, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "prompt.safetensors"
    save_file({"prompt": torch.randn(4, bert.hidden_size)}, str(path))
    ctx = build_context(MethodConfig(strategy="ppt", injection="prefix", prefix_projection="none", prompt_length=2,
                                     pretrained_prompt=str(path)), bert, 2)
    with pytest.raises(ValueError, match=r"method.pretrained_prompt .* expected \[k, 128\].*prefix_projection 'none'"):
        build_adapter(ctx, bert, 0)


# ---------------------------------------------------------------- the task-level prompt


@pytest.mark.parametrize("injection,projection", [("input", "mlp"), ("prefix", "mlp"), ("prefix", "none")])
@pytest.mark.parametrize("strategy,extra", [("random_ipt", {"table_layout": "compact"}),
                                            ("encoder_ipt", {"encoder": "cnn"})])
def test_task_prompt_comes_before_the_instance_prompts_and_trains(bert, strategy, extra, injection, projection):
    t, k = 2, 3
    group = make_group(bert, strategy=strategy, injection=injection, prefix_projection=projection, prompt_length=k,
                       task_prompt_length=t, **extra)
    adapter = group.adapters[0]
    batch = make_batch(bert, ["film", *TEXTS[:2]], labels=[0, 1, 2])  # "film": fewer than k content tokens
    own, own_mask = adapter.source(batch)
    width = bert.hidden_size if projection == "mlp" else 2 * bert.num_layers * bert.hidden_size
    assert adapter.task_prompt.prompt.shape == (t, width) and adapter.prompt_length == t + k
    prompts, mask = adapter.prompt_state(batch)
    if getattr(adapter.injection, "mlp", None) is None:  # input injection or no projection: the state is the prompt
        assert torch.equal(prompts[:, :t], adapter.task_prompt.prompt.expand(3, -1, -1))
        assert torch.equal(prompts[:, t:], own)
    assert mask[:, :t].eq(1).all() and torch.equal(mask[:, t:], own_mask)
    if strategy == "random_ipt":  # a short input's masked positions stay masked behind the task prompt
        assert mask[0].tolist() == [1, 1, 1, 0, 0]
    loss_of(group, batch).backward()
    grad = adapter.task_prompt.prompt.grad
    assert grad is not None and grad.abs().sum() > 0


def test_task_prompt_with_prefix_tuning_of_a_single_instance_source_is_the_longer_prefix(bert):
    """Prefix + IPT with a task-level prefix: the instance prompt and the task prompt enter the same k + t keys."""
    # full layout: with make_group's compact table (even ids only) two texts' first tokens may share the unknown row
    group = make_group(bert, strategy="random_ipt", injection="prefix", prompt_length=2, task_prompt_length=3,
                       table_layout="full").eval()
    adapter = group.adapters[0]
    batch = make_batch(bert, TEXTS)
    kv, mask = adapter.prompt_state(batch)
    assert kv.shape == (3, 5, 2 * bert.num_layers * bert.hidden_size) and mask.shape == (3, 5)
    # the task part is the same for every instance, the instance part is not
    assert torch.allclose(kv[0, :3], kv[1, :3]) and not torch.allclose(kv[0, 3:], kv[1, 3:])


@pytest.mark.parametrize("injection,projection", [("input", "mlp"), ("prefix", "mlp"), ("prefix", "none")])
def test_task_prompt_batched_seeds_equal_sequential(bert, injection, projection):
    group = make_group(bert, seeds=(0, 1, 2), strategy="random_ipt", injection=injection, prefix_projection=projection,
                       prompt_length=3, task_prompt_length=2, hard_prompt=HARD).eval()
    batches = [make_batch(bert, TEXTS[i:i + 2] if i < 2 else TEXTS[:1]) for i in range(3)]
    for a, b in zip(group(batches, batched=False), group(batches, batched=True)):
        assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("injection", ["input", "prefix"])
def test_seeds_of_different_prompt_lengths_share_one_pass(bert, injection):
    """Inference groups adapters by (injection, prompt_length): padded prompt states keep each one exact."""
    plain = make_group(bert, strategy="random_ipt", injection=injection, prompt_length=3).adapters[0]
    longer = make_group(bert, strategy="random_ipt", injection=injection, prompt_length=3, task_prompt_length=2,
                        hard_prompt=HARD).adapters[0]
    group = SeedGroup(bert, [plain, longer], [0, 1]).eval()
    batches = [make_batch(bert, TEXTS[:2]), make_batch(bert, TEXTS[1:])]
    for a, b in zip(group(batches, batched=False), group(batches, batched=True)):
        assert torch.allclose(a, b, atol=1e-5)


# ---------------------------------------------------------------- hard type prompts (Table 5)


def hard_ids(backbone, text=HARD) -> list[int]:
    return backbone.tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("layout", ["full", "compact", "lowrank"])
@pytest.mark.parametrize("injection", ["input", "prefix"])
def test_hard_prompt_rows_come_before_the_first_k_tokens(bert, layout, injection):
    k, ids = 3, hard_ids(bert)
    group = make_group(bert, strategy="random_ipt", injection=injection, table_layout=layout, prompt_length=k,
                       hard_prompt=HARD)
    source = group.adapters[0].source
    batch = make_batch(bert, ["film", TEXTS[0]])
    prompts, mask = source(batch)
    h = len(ids)
    assert source.length == h + k and prompts.shape == (2, h + k, bert.hidden_size)
    first = first_content_tokens(batch.input_ids, batch.content_mask, k)[0]
    expected = source.table(torch.cat([torch.tensor(ids).expand(2, -1), first], dim=1))
    assert torch.equal(prompts, expected)
    assert mask.tolist() == [[1] * h + [1, 0, 0], [1] * (h + k)]
    # the hard rows are table rows: they train with the rest
    batch.labels = torch.tensor([0, 1])
    loss_of(group, batch).backward()
    rows = source.table.rows
    grad_rows = rows.weight.grad.abs().sum(1).nonzero().flatten().tolist()
    hard_rows = source.table.id_to_row[torch.tensor(ids)].tolist() if layout == "compact" else ids
    assert set(hard_rows) <= set(grad_rows)


def test_compact_table_gives_unseen_hard_ids_their_own_rows(bert):
    unseen = [i for i in hard_ids(bert) if i % 2]  # make_group's data saw the even ids only
    text = HARD
    if not unseen:  # pick a text whose ids are not all seen
        text = next(w for w in ("wonderful acting", "terrible answer", "maybe today") if any(i % 2 for i in hard_ids(bert, w)))
        unseen = [i for i in hard_ids(bert, text) if i % 2]
    with_hard = make_group(bert, strategy="random_ipt", table_layout="compact", hard_prompt=text).adapters[0].source
    without = make_group(bert, strategy="random_ipt", table_layout="compact").adapters[0].source
    assert (with_hard.table.id_to_row[torch.tensor(unseen)] > 0).all()  # row 0 is the shared unknown row
    assert (without.table.id_to_row[torch.tensor(unseen)] == 0).all()
    assert with_hard.table.rows.num_embeddings == without.table.rows.num_embeddings + len(set(unseen))


def test_hard_prompt_ids_have_no_special_tokens(roberta):
    ctx = build_context(MethodConfig(strategy="random_ipt", hard_prompt="Culture and the Arts"), roberta, 2)
    special = set(roberta.tokenizer.all_special_ids)
    assert len(ctx.hard_prompt_ids) > 0 and not special & set(ctx.hard_prompt_ids.tolist())


# ---------------------------------------------------------------- random_ipt with table_init: backbone


def test_random_ipt_from_the_backbone_table_starts_at_the_word_embeddings_and_trains(bert):
    group = make_group(bert, strategy="random_ipt", table_layout="full", table_init="backbone", prompt_length=3)
    table = group.adapters[0].source.table.rows.weight
    assert torch.equal(table, bert.word_embeddings.weight)
    before = table.detach().clone()
    batch = make_batch(bert, TEXTS, labels=[0, 1, 2])
    loss_of(group, batch).backward()
    torch.optim.SGD([p for p in group.parameters() if p.requires_grad], lr=0.5).step()
    assert not torch.equal(table, before) and torch.equal(bert.word_embeddings.weight, before)  # a copy trains
