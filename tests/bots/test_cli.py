"""The ``visionbot`` command run as a user runs it: a real process, the tiny model, a real DB."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import image_bytes

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path: Path, tiny_model_dir: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VISIONBOT_")}
    return clean | {
        "VISIONBOT_MODEL__ID": str(tiny_model_dir),
        "VISIONBOT_MODEL__MAX_NEW_TOKENS": "6",
        "VISIONBOT_MODEL__THREADS": "1",
        "VISIONBOT_STORAGE__URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "HF_HUB_OFFLINE": "1",
    }


def visionbot(
    args: list[str], env: dict[str, str], cwd: Path, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bots.cli", *args],
        env=env | {"PYTHONPATH": str(ROOT)},
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_chat_answers_about_an_image_and_continues_the_conversation(
    env: dict[str, str], tmp_path: Path
) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(image_bytes("JPEG", size=(640, 480)))
    first = visionbot(["chat", "--image", str(photo), "What is in this photo?"], env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip(), "an answer is printed"
    assert "stored turn 1 (1 images)" in first.stderr

    second = visionbot(["chat", "And the colours?"], env, tmp_path)
    assert second.returncode == 0, second.stderr
    assert "stored turn 3 (0 images)" in second.stderr  # same conversation, after turn 1 + answer

    fresh = visionbot(["chat", "--new", "Hello"], env, tmp_path)
    assert fresh.returncode == 0, fresh.stderr


def test_interactive_chat_with_image_reset_and_quit(env: dict[str, str], tmp_path: Path) -> None:
    photo = tmp_path / "p.png"
    photo.write_bytes(image_bytes("PNG"))
    script = f"/image {photo}\nWhat is it?\nMore detail please\n/reset\n/bogus\n/quit\n"
    result = visionbot(["chat"], env, tmp_path, stdin=script)
    assert result.returncode == 0, result.stderr
    assert "Attached 1 image(s)" in result.stdout
    assert "forgotten this conversation" in result.stdout
    assert "don't know the command" in result.stdout
    assert result.stderr.count("answered turn") == 2


def test_chat_refuses_a_non_image_politely(env: dict[str, str], tmp_path: Path) -> None:
    fake = tmp_path / "invoice.jpg"
    fake.write_text("not really a jpeg")
    result = visionbot(["chat", "--image", str(fake), "Read it"], env, tmp_path)
    assert result.returncode == 1
    assert "not an image" in result.stdout
    assert "Traceback" not in result.stderr


def test_run_with_nothing_configured_says_what_to_set(env: dict[str, str], tmp_path: Path) -> None:
    result = visionbot(["run"], env | {"VISIONBOT_WEB__ENABLED": "false"}, tmp_path)
    assert result.returncode == 2
    assert "[telegram] token" in result.stderr and "[slack]" in result.stderr


def test_unloadable_model_gives_a_clear_message(env: dict[str, str], tmp_path: Path) -> None:
    result = visionbot(
        ["chat", "hi"], env | {"VISIONBOT_MODEL__ID": str(tmp_path / "missing")}, tmp_path
    )
    assert result.returncode == 3
    assert "cannot load the model" in result.stderr and "[model] id" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_config_is_one_clear_line(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[history]\nmax_turns = 0\n")
    result = visionbot(["chat", "hi"], env, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("visionbot: config: 'history.max_turns'")
    assert len(result.stderr.strip().splitlines()) == 1


def test_adapter_with_incomplete_settings_says_which_key(
    env: dict[str, str], tmp_path: Path
) -> None:
    result = visionbot(
        ["run"],
        env | {"VISIONBOT_SLACK__BOT_TOKEN": "xoxb-1", "VISIONBOT_WEB__ENABLED": "false"},
        tmp_path,
    )
    assert result.returncode == 2
    assert "app_token" in result.stderr.splitlines()[-1]
    assert "Traceback" not in result.stderr


def test_hub_model_that_cannot_be_fetched_gives_a_clear_message(
    env: dict[str, str], tmp_path: Path
) -> None:
    # HF_HUB_OFFLINE (set in env) makes the hub unreachable without touching the network.
    hub_env = env | {
        "VISIONBOT_MODEL__ID": "Qwen/Qwen3-VL-2B-Instruct",
        "HF_HOME": str(tmp_path / "hf"),
    }
    result = visionbot(["run"], hub_env, tmp_path)
    assert result.returncode == 3, result.stderr
    assert "cannot load the model 'Qwen/Qwen3-VL-2B-Instruct'" in result.stderr
    assert "Traceback" not in result.stderr
