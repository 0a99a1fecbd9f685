"""Assemble bench/RESULTS.md from the tables the individual benchmarks write (results_*.md)."""

import pathlib

HERE = pathlib.Path(__file__).resolve().parent
ORDER = ["results_accuracy.md", "results_e2e.md", "results_gemm.md", "results_layers_conv.md",
         "results_layers_rnn.md"]


def _demote(text: str) -> str:
    """Shift the headings of one table file so its top level is ## under this page's title."""
    lines = text.splitlines()
    levels = [len(ln) - len(ln.lstrip("#")) for ln in lines if ln.startswith("#")]
    shift = 2 - min(levels) if levels else 0
    return "\n".join("#" * shift + ln if ln.startswith("#") and shift > 0 else ln for ln in lines)


def main():
    parts = [p for p in (HERE / name for name in ORDER) if p.exists()]
    parts += sorted(p for p in HERE.glob("results_*.md") if p.name not in ORDER)
    body = "\n\n".join(_demote(p.read_text().strip()) for p in parts)
    (HERE / "RESULTS.md").write_text(
        "# nncore benchmark results\n\n"
        "Measured on the project's 2-core machine; each section names the command that produced it.\n"
        "Medians of repeated runs; ratios are computed from the medians of the same run.\n\n"
        + body + "\n"
    )
    print(f"wrote {HERE / 'RESULTS.md'} from {', '.join(p.name for p in parts)}")


if __name__ == "__main__":
    main()
