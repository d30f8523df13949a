"""The console command: subcommands are listed, and user errors print one message, not a traceback."""

import sys

from read_clip import cli


def test_every_command_importable():
    import importlib

    for name, (module_name, _) in cli.COMMANDS.items():
        module = importlib.import_module(module_name)
        assert hasattr(module, "configure_parser"), f"{name}: {module_name} has no configure_parser"
        assert hasattr(module, "main"), f"{name}: {module_name} has no main"


def test_user_error_one_line(tmp_path, monkeypatch, capsys):
    argv = ["read-clip", "make-demo-world", "--settings", '{"seed": 1}', "--out", str(tmp_path / "w")]
    monkeypatch.setattr(sys, "argv", argv)
    assert cli.run() == 1
    err = capsys.readouterr().err
    assert err.startswith("read-clip: error: ")
    assert "Traceback" not in err
    assert "train_images" in err
