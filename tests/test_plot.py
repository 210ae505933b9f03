"""``mappo-td plot`` draws what the runs hold, says which rows and runs it leaves out, and writes where it says."""

import pytest

from mappo_td.cli import main

pytest.importorskip("matplotlib")
HEADER = "timestep,frames,time_s,reward/episode_mean"


def run_with(tmp_path, name: str, *rows: str):
    run = tmp_path / name
    run.mkdir()
    (run / "progress.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return run


def curve_pixels(png) -> list[int]:
    """Pixels of the first curve colour (matplotlib's C0) in each panel, below the legend's band at the top."""
    import numpy as np
    from PIL import Image

    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    c0 = np.abs(rgb - [31, 119, 180]).sum(-1) < 30
    h, w = c0.shape
    return [int(c0[h // 5:, :w // 2].sum()), int(c0[h // 5:, w // 2:].sum())]


def test_a_garbled_row_is_skipped_with_a_warning_naming_file_and_line_and_both_panels_draw(tmp_path, capsys):
    run = run_with(tmp_path, "r", "1,10,1.0,0.5", "2,oops,2.0,1.0", "3,30,3.0,1.5", "4,40,4.0")  # the last one cut short
    out = tmp_path / "r.png"
    assert main(["plot", str(run), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"mappo-td: warning: {run / 'progress.csv'}: skipped 2 unreadable row(s):" in err
    assert "line 3 (frames is 'oops', not a number)" in err and "line 5 (3 fields where the header has 4)" in err
    left, right = curve_pixels(out)
    assert left > 50 and right > 50  # frames stayed a number column: the frames panel has its curve


def test_a_one_row_run_draws_a_marker_in_each_panel(tmp_path, capsys):
    run = run_with(tmp_path, "one", "1,10,1.0,0.5")
    assert main(["plot", str(run)]) == 0
    assert capsys.readouterr().out == f"wrote {run / 'reward.png'}\n"
    left, right = curve_pixels(run / "reward.png")
    assert left > 30 and right > 30


def test_out_folder_gets_reward_png_and_the_printed_path_is_the_file_written(tmp_path, capsys):
    run = run_with(tmp_path, "r", "1,10,1.0,0.5", "2,20,2.0,1.5")
    folder = tmp_path / "plots"
    folder.mkdir()
    assert main(["plot", str(run), "-o", str(folder)]) == 0
    assert capsys.readouterr().out == f"wrote {folder / 'reward.png'}\n"
    assert (folder / "reward.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (folder / "reward.png").stat().st_size > 10_000
    assert main(["plot", str(run), "-o", str(tmp_path / "new") + "/"]) == 0  # a folder still to make
    assert capsys.readouterr().out == f"wrote {tmp_path / 'new' / 'reward.png'}\n" and (tmp_path / "new" / "reward.png").is_file()
    assert main(["plot", str(run), "-o", str(tmp_path / "curves")]) == 0  # no suffix: matplotlib's .png, said so
    assert capsys.readouterr().out == f"wrote {tmp_path / 'curves.png'}\n" and (tmp_path / "curves.png").is_file()


def test_an_unwritable_format_is_refused_before_anything_is_written(tmp_path, capsys):
    run = run_with(tmp_path, "r", "1,10,1.0,0.5")
    assert main(["plot", str(run), "-o", str(tmp_path / "curves.txt")]) == 2
    err = capsys.readouterr().err
    assert f"cannot write {tmp_path / 'curves.txt'}: matplotlib writes" in err and ".png" in err and "not .txt" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_nothing_to_draw_exits_2_naming_every_run_and_writes_nothing(tmp_path, capsys):
    nan = run_with(tmp_path, "nan", "1,10,1.0,nan", "2,20,2.0,")
    empty = run_with(tmp_path, "empty")
    out = tmp_path / "out.png"
    assert main(["plot", str(nan), "-o", str(out)]) == 2
    assert f"mappo-td: error: nothing to draw, no image written: {nan}: none of its 2 row(s) has a finite" in capsys.readouterr().err
    assert main(["plot", str(nan), str(empty), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{nan}: none of its 2 row(s)" in err and f"{empty}: no readable log row yet" in err
    assert not out.exists() and not (nan / "reward.png").exists()


def test_an_empty_run_beside_runs_with_data_is_left_out_with_a_warning(tmp_path, capsys):
    good = run_with(tmp_path, "good", "1,10,1.0,0.5", "2,20,2.0,1.5")
    nan = run_with(tmp_path, "nan", "1,10,1.0,nan")
    out = tmp_path / "out.png"
    assert main(["plot", str(good), str(nan), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"mappo-td: warning: left out, nothing to draw: {nan}: none of its 1 row(s)" in captured.err
    assert captured.out == f"wrote {out}\n" and out.stat().st_size > 10_000


def test_from_python_rows_left_out_are_plot_warnings(tmp_path):
    from mappo_td.plot import PlotWarning, read_progress

    run = run_with(tmp_path, "r", "1,10,1.0,0.5", "2,oops,2.0,1.0")
    with pytest.warns(PlotWarning, match=r"progress.csv: skipped 1 unreadable row\(s\): line 3 \(frames is 'oops'"):
        cols = read_progress(run)
    assert cols["frames"] == [10.0] and cols["reward/episode_mean"] == [0.5]
