"""The frozen reference set recorded in the model card is what the code computes."""

from __future__ import annotations

from nlp.sentiment import frozen_reference_ids, ids_digest, load_news_dev


def test_frozen_reference_set_matches_model_card(shared_data):
    labelled, unlabelled = load_news_dev(shared_data)
    assert len(labelled) == 600 and len(unlabelled) == 19878
    ref = frozen_reference_ids(labelled)
    assert len(ref) == 122
    assert ids_digest(ref) == "6f1d86e4f1c10976"
    # membership depends on the id only: adding items never moves old ones in or out
    assert frozen_reference_ids(labelled[:300]) == [i for i in ref if int(i.split("-")[1]) <= 300]
