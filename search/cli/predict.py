"""``predict``: run a model ``train`` wrote on images, files, folders or npz arrays."""

from __future__ import annotations

import argparse

from search.errors import UsageError

DEFAULT_TOP_K = 3


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        required=True,
        metavar="DIR",
        help="the folder 'train' wrote (its model.keras, loaded in Keras' safe mode, and labels.json)",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="IMAGE|FOLDER|npz:PATH",
        help="image files, folders (every image under them), or npz:PATH with an array x (or x_test), "
        "optionally labels y (or y_test): then the accuracy is printed too",
    )
    p.add_argument(
        "--top-k",
        type=int,
        help=f"classes to list per image, most likely first (default: {DEFAULT_TOP_K}); "
        "text models list the string and each position's probability instead",
    )
    p.add_argument("--out", help="also write the predictions to this .csv or .json file")


def run(args: argparse.Namespace) -> int:
    from search.final.predict import check_out_path, format_row, prediction_rows, read_inputs, write_rows
    from search.final.serving import read_model_info

    if args.top_k is not None and args.top_k < 1:
        raise UsageError(f"--top-k must be at least 1, received {args.top_k}")
    out = check_out_path(args.out)
    info, model_file = read_model_info(args.model)
    k = len(info.class_names)
    if args.top_k is not None and info.text_length:
        raise UsageError(
            f"--top-k: {args.model} reads texts ({info.text_length} characters); it prints each position's "
            "probability instead of a top-k; leave --top-k out"
        )
    if args.top_k is not None and args.top_k > k:
        raise UsageError(f"--top-k {args.top_k}: the model has {k} classes; choose 1..{k}")
    top_k = min(args.top_k or DEFAULT_TOP_K, k)
    inputs = read_inputs(args.inputs, info)  # every image checked before TensorFlow loads

    from search.cli import require_tensorflow
    from search.final.predict import load_checked, predict_probabilities

    require_tensorflow()
    model = load_checked(model_file, info)
    probabilities = predict_probabilities(model, inputs.array())
    rows = prediction_rows(info, inputs, probabilities, top_k)
    for note in inputs.notes:
        print(note)
    for row in rows:
        print(format_row(row))
    labelled = [r for r in rows if "true" in r]
    summary = f"{len(rows)} image{'s' * (len(rows) != 1)}"
    if labelled:
        right = sum(r["right"] for r in labelled)
        kind = "whole-text accuracy" if info.text_length else "accuracy"
        summary += f"; {kind} {right / len(labelled):.4f} ({right} of {len(labelled)} with labels)"
    if out is not None:
        write_rows(rows, out)
        summary += f"; wrote {out}"
    print(summary)
    return 0
