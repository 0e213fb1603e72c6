"""Voice catalogue: ids, OpenAI names, blends, and never a file path."""

from __future__ import annotations

import pytest

from tests.tiny_model import VOICES
from tts_api.voices import OPENAI_VOICES, VoiceBlend, VoiceCatalogue, VoiceNotFound

CATALOGUE = VoiceCatalogue(VOICES)


def test_the_catalogue_knows_language_and_gender() -> None:
    assert len(CATALOGUE) == 54
    assert CATALOGUE.voices["bm_george"].language == "en-gb"
    assert CATALOGUE.voices["bm_george"].gender == "male"
    assert CATALOGUE.voices["zf_xiaobei"].language == "zh"


def test_every_openai_name_maps_to_a_real_voice() -> None:
    for name, voice in OPENAI_VOICES.items():
        assert CATALOGUE.resolve(name) == VoiceBlend(((voice, 1.0),)), name


@pytest.mark.parametrize(
    ("expression", "parts"),
    [
        ("af_heart", (("af_heart", 1.0),)),
        ("af_bella+af_sky", (("af_bella", 0.5), ("af_sky", 0.5))),
        ("af_bella(2)+af_sky(1)", (("af_bella", 2 / 3), ("af_sky", 1 / 3))),
        (" af_bella ( 3 ) + af_sky ", (("af_bella", 0.75), ("af_sky", 0.25))),
        ("af_bella+af_bella", (("af_bella", 1.0),)),
        ("nova+af_sky(0.5)", (("af_nova", 2 / 3), ("af_sky", 1 / 3))),
    ],
)
def test_blends_resolve_to_normalized_weights(expression: str, parts: tuple) -> None:
    blend = CATALOGUE.resolve(expression)
    assert [v for v, _ in blend.parts] == [v for v, _ in parts]
    assert [w for _, w in blend.parts] == pytest.approx([w for _, w in parts])


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "af_x",
        "../af_heart",
        "af_heart.pt",
        "/etc/passwd",
        "voices/af_heart",
        "af_heart,af_sky",
        "a+" * 9 + "a",
    ],
)
def test_anything_but_known_voices_is_rejected(expression: str) -> None:
    with pytest.raises(VoiceNotFound):
        CATALOGUE.resolve(expression)


def test_equal_blends_share_a_cache_key() -> None:
    assert CATALOGUE.resolve("af_bella(2)+af_sky(2)").key == CATALOGUE.resolve("af_bella+af_sky").key


def test_the_language_of_a_blend_is_its_first_voice() -> None:
    assert CATALOGUE.resolve("bf_emma+af_heart").lang_code == "b"


def test_files_that_are_not_voice_ids_are_not_catalogued() -> None:
    assert len(VoiceCatalogue(["af_heart", "notes", "x_y", "qf_zed", "AF_HEART"])) == 1
