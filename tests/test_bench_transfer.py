"""bench/transfer.py still runs end to end (tiny sizes, results to a temporary folder).

The figures are measured by running the script for real (bench/results/transfer.json),
never asserted here."""

from __future__ import annotations


def test_transfer_bench_runs(run_bench):
    result = run_bench(
        "transfer.py", "--seeds", "1", "--n-test", "40", "--labels-per-class", "1", "--epochs", "1",
        "--drawings", "1", "--rounds", "1", "--per-round", "5", "--k", "5",
    )
    transfer, retrieval = result["transfer"], result["retrieval"]
    assert transfer["n_test"] == 40 and len(transfer["probe"]["per_seed"]) == 1
    assert 0 <= transfer["probe"]["mean"] <= 100 and 0 <= transfer["scratch"]["mean"] <= 100
    assert isinstance(transfer["target_met"], bool)
    assert len(retrieval["per_alphabet"]) == 20
    assert [r["labels"] for r in retrieval["target"]] == [0, 5]
    assert 0 <= retrieval["after_hits_unlabeled"] <= 5 and result["machine"]["cores"] >= 1
    assert retrieval["labels_to_all_relevant_overall"] in (None, 0, 5)
    assert retrieval["target_met_overall"] == (retrieval["labels_to_all_relevant_overall"] is not None)
    assert 0 <= retrieval["alphabets_reaching_all_relevant_overall"] <= 20
