"""Trainable parameters, optimizer state and peak RSS per method and table layout.

MiniLM-L6 (measured: each method in its own process, 3 training steps on 16 x 128 tokens; peak RSS
is the process's high-water mark, and "over backbone" subtracts a process that only loaded the
backbone and ran the same batch forward) and roberta-large (computed: the adapters are built on a
randomly initialised roberta-large of the real shape; nothing is trained). The compact table's row
count is the number of distinct ids in CB's training set under the MiniLM tokenizer (the roberta
tokenizer is not available offline), used for both backbones.

Target: every IPT strategy has a default layout with at most 1.5% of roberta-large's parameters trainable.
Usage: python -m bench.memory [--out bench/results/memory.md]

``--encoders`` (cheap, seconds, no weights): Encoder IPT's encoders (body + k-prompt readout, default
``encoder_hidden``) at the paper's Table 6 setting (roberta-large, k = 100) and on MiniLM-L6 (k = 16 and
100), counted on the meta device (shapes only, nothing allocated or downloaded), against the backbone
counted the same way (roberta-large with its pooler, as the hub ships it: 355.4M). It replaces the
encoder section of ``--out``. Appendix A.3's target: ~0.5% of roberta-large each.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path
from bench._methods import bench_methods
from bench._results import write_results

METHODS = bench_methods(fine_tuning=True, mark_defaults=True)


def cb_seen_ids():
    from ipt_ray.backbone import load_backbone
    from ipt_ray.batches import encode, seen_token_ids
    from ipt_ray.config import BackboneConfig, TaskConfig
    from ipt_ray.data import load_splits

    spec, splits = load_splits(TaskConfig(name="cb"))
    tok = load_backbone(BackboneConfig(name="minilm-l6")).tokenizer
    return seen_token_ids(encode(splits["train"], spec, tok, 128, template=False))


def measure_one(method_json: str) -> None:
    """Child process: one method on MiniLM; prints a JSON line."""
    import torch
    import torch.nn.functional as F

    from ipt_ray.backbone import load_backbone
    from ipt_ray.config import BackboneConfig, MethodConfig
    from ipt_ray.model import SeedGroup, build_adapter, build_context, count_trainable
    from ipt_ray.train import seed_optimizer
    from bench.step_time import ADAMW_DEFAULT_DECAY, make_batch

    method = json.loads(method_json)
    backbone = load_backbone(BackboneConfig(name="minilm-l6"))
    tok = backbone.tokenizer
    batch = make_batch(backbone.vocab_size, tok.cls_token_id, tok.sep_token_id)
    if method is None:  # baseline: the backbone and one forward pass, nothing trainable
        with torch.no_grad():
            backbone.encoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
        print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
        return
    cfg = MethodConfig(prompt_length=16, **method)
    ctx = build_context(cfg, backbone, 2, seen_token_ids=cb_seen_ids())
    group = SeedGroup(backbone, [build_adapter(ctx, backbone, 0)], [0]).train()
    opt = seed_optimizer(group.adapters[0], lr=1e-3, weight_decay=ADAMW_DEFAULT_DECAY)
    for _ in range(3):
        F.cross_entropy(group([batch])[0], batch.labels).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    state_bytes = sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values() if torch.is_tensor(t))
    print(json.dumps({"trainable": count_trainable(group), "backbone": backbone.num_parameters(),
                      "optimizer_bytes": state_bytes,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def roberta_large_counts(seen) -> dict[str, tuple[int, int]]:
    import torch
    from transformers import RobertaConfig, RobertaModel

    from ipt_ray.backbone import Backbone
    from ipt_ray.config import MethodConfig
    from ipt_ray.model import build_adapter, build_context, count_trainable

    config = RobertaConfig(vocab_size=50265, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                           intermediate_size=4096, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1)
    torch.manual_seed(0)
    encoder = RobertaModel(config, add_pooling_layer=False).eval().requires_grad_(False)

    class _NoTokenizer:  # counts only: no label words, no mask token needed by the classifier head
        mask_token_id = None

    backbone = Backbone(name="roberta-large (shape only)", encoder=encoder, tokenizer=_NoTokenizer())
    out = {}
    for name, method in METHODS.items():
        cfg = MethodConfig(prompt_length=16, **method)
        ctx = build_context(cfg, backbone, 2, seen_token_ids=seen)
        adapter = build_adapter(ctx, backbone, 0)
        out[name] = (count_trainable(adapter), backbone.num_parameters())
        del adapter
    return out


ENCODER_SECTION = "## Encoder IPT encoders (appendix A.3), counted on the meta device"


def encoder_counts() -> list[dict]:
    """Trainable parameters of each Encoder IPT encoder (default width) per backbone shape and k; no weights."""
    import torch
    from transformers import AutoConfig, AutoModel, RobertaConfig

    from ipt_ray.backbone import resolve_name
    from ipt_ray.config import MethodConfig
    from ipt_ray.prompts.sources.encoder import EncoderPrompt, encoder_hidden

    shapes = {
        "roberta-large": RobertaConfig(vocab_size=50265, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                       intermediate_size=4096, max_position_embeddings=514, type_vocab_size=1,
                                       pad_token_id=1),
        "minilm-l6": AutoConfig.from_pretrained(resolve_name("minilm-l6"), local_files_only=True),
    }
    rows = []
    for backbone, config in shapes.items():
        with torch.device("meta"):
            total = sum(p.numel() for p in AutoModel.from_config(config).parameters())
        for k in ((100,) if backbone == "roberta-large" else (16, 100)):
            for kind in ("cnn", "rnn", "mlp"):
                method = MethodConfig(strategy="encoder_ipt", encoder=kind, prompt_length=k)
                d, hidden = config.hidden_size, encoder_hidden(method, config.hidden_size)
                with torch.device("meta"):
                    source = EncoderPrompt(k, torch.empty(config.vocab_size, d), kind, hidden, 1.0, torch.empty(k, d))
                encoder = sum(p.numel() for p in source.encoder.parameters())
                readout = sum(p.numel() for p in source.readout.parameters())
                rows.append({"backbone": backbone, "backbone_parameters": total, "d": d, "k": k, "encoder": kind,
                             "encoder_hidden": hidden, "encoder_parameters": encoder, "readout_parameters": readout,
                             "trainable": encoder + readout, "percent": 100 * (encoder + readout) / total})
    return rows


def write_encoder_section(out: Path, rows: list[dict]) -> None:
    lines = [ENCODER_SECTION, "",
             "Trainable parameters of the prompt source (encoder body + k-query readout with its [k, d] base; the "
             "task head is not counted), default `encoder_hidden` (proportional to d). `python -m bench.memory "
             "--encoders`.", "",
             "| backbone (parameters) | k | encoder | encoder_hidden | body | readout | trainable | % of backbone |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['backbone']} ({r['backbone_parameters'] / 1e6:.1f}M) | {r['k']} | {r['encoder']} | "
                     f"{r['encoder_hidden']} | {r['encoder_parameters']:,} | {r['readout_parameters']:,} | "
                     f"{r['trainable']:,} | {r['percent']:.2f}% |")
    text = out.read_text() if out.is_file() else ""
    kept = text.split(ENCODER_SECTION)[0].rstrip("\n")
    out.write_text((kept + "\n\n" if kept else "") + "\n".join(lines) + "\n")
    out.with_name(out.stem + "_encoders.json").write_text(json.dumps(rows, indent=2))
    print("\n".join(lines))


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        measure_one(sys.argv[2])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="bench/results/memory.md")
    parser.add_argument("--encoders", action="store_true", help="only the encoder section (meta device, seconds)")
    args = parser.parse_args()
    if args.encoders:
        write_encoder_section(Path(args.out), encoder_counts())
        return
    root = Path(__file__).resolve().parents[1]

    def child(method) -> dict:
        res = subprocess.run([sys.executable, "-m", "bench.memory", "--child", json.dumps(method)], cwd=root,
                             capture_output=True, text=True, check=True)
        return json.loads(res.stdout.strip().splitlines()[-1])

    baseline = child(None)["peak_rss_mb"]
    minilm = {name: child(method) for name, method in METHODS.items()}
    large = roberta_large_counts(cb_seen_ids())
    lines = [f"Compact tables: {len(cb_seen_ids()):,} rows + 1 (distinct ids of CB train, MiniLM tokenizer). k=16, "
             f"prefix_hidden=128, encoder_hidden=default (before issue 11: 64), table_rank=16. Baseline process (backbone + forward): "
             f"{baseline:.0f} MB peak RSS.", "",
             "| method | MiniLM trainable | % of MiniLM | AdamW state | peak RSS (MB) | over backbone (MB) | "
             "roberta-large trainable | % of roberta-large |",
             "|---|---|---|---|---|---|---|---|"]
    for name, m in minilm.items():
        t_large, b_large = large[name]
        lines.append(
            f"| {name} | {m['trainable']:,} | {100 * m['trainable'] / m['backbone']:.2f}% | "
            f"{m['optimizer_bytes'] / 2**20:.1f} MiB | {m['peak_rss_mb']:.0f} | {m['peak_rss_mb'] - baseline:.0f} | "
            f"{t_large:,} | {100 * t_large / b_large:.2f}% |")
    write_results(args.out, lines, {"baseline_rss_mb": baseline, "minilm": minilm, "roberta_large": large})


if __name__ == "__main__":
    main()
