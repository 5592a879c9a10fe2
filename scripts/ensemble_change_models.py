"""Join several change models (ONNX, same input) into one ONNX file that averages them.

    .venv-train/bin/python scripts/ensemble_change_models.py A.onnx B.onnx [C.onnx ...] --out E.onnx

The joined graph feeds the one input ``x`` to every member, averages the members'
probabilities (sigmoid of each logit) and outputs the logit of that mean, so the product's
``CnnDetector`` (threshold 0.5 on the sigmoid) runs it unchanged, as a single file. Members
must agree on what they take (bands, ``diff_only``, ``diff_norm``): the joined file carries
that metadata plus the members' names, steps and seeds.

Leave-one-city-out ensembles: join the fold models of one held-out city (e.g. two seeds),
never fold models that saw the city they are to be measured on. Runs in the training
environment (it needs the onnx package; the product has onnxruntime only).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import onnx
from onnx import TensorProto, helper

#: Metadata that must be the same in every member: it says what the model's input is.
MUST_AGREE = ("bands", "diff_only", "diff_norm", "normalisation", "multiple_of")


def join(paths: list[Path]) -> onnx.ModelProto:
    models = [onnx.load(str(p)) for p in paths]
    metas = [{e.key: e.value for e in m.metadata_props} for m in models]
    for key in MUST_AGREE:
        values = {meta.get(key) for meta in metas}
        if len(values) > 1:
            raise SystemExit(f"members disagree on {key!r}: {sorted(map(str, values))}")
    first = models[0].graph
    nodes, inits, probs = [], [], []
    for i, m in enumerate(models):
        g = m.graph
        prefix = f"m{i}_"
        (inp,) = [v.name for v in g.input if v.name not in {t.name for t in g.initializer}]
        (out,) = [v.name for v in g.output]
        rename = {t.name: prefix + t.name for t in g.initializer}
        for n in g.node:
            for name in n.output:
                rename.setdefault(name, prefix + name)
        rename[inp] = "x"
        for t in g.initializer:
            t.name = rename[t.name]
            inits.append(t)
        for n in g.node:
            n.name = prefix + (n.name or n.op_type)
            for k, name in enumerate(n.input):
                if name:
                    n.input[k] = rename.get(name, name)
            for k, name in enumerate(n.output):
                n.output[k] = rename[name]
            nodes.append(n)
        probs.append(prefix + "prob")
        nodes.append(helper.make_node("Sigmoid", [rename[out]], [probs[-1]], name=prefix + "sig"))
    eps = helper.make_tensor("eps", TensorProto.FLOAT, [], [1e-6])
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    inits += [eps, one]
    nodes += [
        helper.make_node("Mean", probs, ["p_mean"], name="mean"),
        # logit(p) = log(p) - log(1 - p), p kept off 0 and 1
        helper.make_node("Sub", ["one", "eps"], ["hi"], name="hi"),
        helper.make_node("Clip", ["p_mean", "eps", "hi"], ["p_clip"], name="clip"),
        helper.make_node("Log", ["p_clip"], ["log_p"], name="log_p"),
        helper.make_node("Sub", ["one", "p_clip"], ["q"], name="q"),
        helper.make_node("Log", ["q"], ["log_q"], name="log_q"),
        helper.make_node("Sub", ["log_p", "log_q"], ["logit"], name="logit"),
    ]
    x = [v for v in first.input if v.name not in {t.name for t in first.initializer}][0]
    x_info = onnx.ValueInfoProto()
    x_info.CopyFrom(x)
    x_info.name = "x"
    y_info = onnx.ValueInfoProto()
    y_info.CopyFrom(first.output[0])
    y_info.name = "logit"
    graph = helper.make_graph(nodes, "change_ensemble", [x_info], [y_info], initializer=inits)
    model = helper.make_model(graph, opset_imports=models[0].opset_import)
    model.ir_version = models[0].ir_version
    meta = {key: metas[0][key] for key in MUST_AGREE if key in metas[0]}
    meta.update(
        {
            "ensemble": json.dumps([p.name for p in paths]),
            "members": json.dumps(
                [
                    {k: m.get(k) for k in ("trained_on", "held_out", "steps", "seed", "teacher")}
                    for m in metas
                ]
            ),
            "held_out": metas[0].get("held_out", "[]"),
            "data": metas[0].get("data", ""),
        }
    )
    for k, v in meta.items():
        e = model.metadata_props.add()
        e.key, e.value = k, v
    onnx.checker.check_model(model)
    return model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("members", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if len(args.members) < 2:
        ap.error("an ensemble needs at least two members")
    model = join(args.members)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(args.out))
    print(f"wrote {args.out}: mean probability of {len(args.members)} members")
    return 0


if __name__ == "__main__":
    sys.exit(main())
