import shutil

import numpy as np
import pytest

from device_sim import spswhar
from device_sim.dataset import DataError

HEADER = "x_acc,y_acc,z_acc,x_gyro,y_gyro,z_gyro,timestamp,label"


def test_real_watch_data_loads_every_subject(spswhar_path):
    ds = spswhar.load(spswhar_path, "watch")
    assert len(ds.subjects) == 18 and len(ds.devices) == 18
    assert ds.label_names == spswhar.LABELS
    s02 = next(d for d in ds.devices if d.subject == "s02")
    assert s02.device_id == "s02-watch"
    assert s02.metadata["age"] == "31" and s02.metadata["dominant_hand"] == "R"
    assert len(s02.executions) == 9
    assert s02.windows.shape[1:] == (50, 6) and s02.windows.dtype == np.float32
    labels = np.concatenate([d.labels for d in ds.devices])
    # every class appears and WALKING is the most frequent, as the dataset's README says
    counts = np.bincount(labels, minlength=5)
    assert counts.min() > 0 and counts.argmax() == spswhar.LABELS.index("WALKING")
    # gravity is in the accelerometer: mean magnitude near 9.8 m/s^2
    acc = np.concatenate([d.windows[:, :, :3] for d in ds.devices]).reshape(-1, 3)
    assert 9.0 < np.linalg.norm(acc, axis=1).mean() < 10.6


def test_both_sensors_are_separate_devices(spswhar_path):
    ds = spswhar.load(spswhar_path, "both")
    assert len(ds.devices) == 36
    assert {d.device for d in ds.devices} == {"watch", "phone"}


def write_dataset(root, rows_by_file):
    data = root / "DATA"
    (data / "s01").mkdir(parents=True)
    (data / "subjects_info.csv").write_text(
        "subject_id,age,gender,height,weight,dominant_hand,executions\ns01,40,F,170,60,R,1\n"
    )
    for name, text in rows_by_file.items():
        (data / "s01" / name).write_text(text)
    return root


def good_rows(n=300, label="WALKING", start=1657533977810):
    lines = [HEADER]
    for i in range(n):
        lines.append(f"0.1,0.2,9.8,0.01,0.02,0.03,{start + i * 10},{label}")
    return "\n".join(lines) + "\n"


def test_small_published_layout_loads(tmp_path):
    write_dataset(tmp_path, {"s01_01_sw.csv": good_rows(), "s01_02_sw.csv": good_rows()})
    ds = spswhar.load(tmp_path, "watch")
    (device,) = ds.devices
    # 3 s at 50 Hz -> 150 grid samples -> 5 windows per execution
    assert len(device) == 10 and device.executions == [0, 1]
    assert set(device.labels.tolist()) == {spswhar.LABELS.index("WALKING")}


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty file"),
        ("x_acc,y_acc,z_acc,x_gyro,y_gyro,timestamp,label\n1,2,3,4,5,6,SEATED\n", "missing columns z_gyro"),
        (HEADER + "\n0,0,9.8,0,0,0,100,SEATED\n0,0,9.8,0,0,0,110,JUMPING\n", "line 3: unknown label 'JUMPING'"),
        (HEADER + "\n0,0,9.8,0,0,0,100,SEATED\n0,0,9.8,0,0,0,90,SEATED\n", "line 3: timestamp goes backwards"),
        (HEADER + "\n0,0,abc,0,0,0,100,SEATED\n", "line 2: malformed row"),
        (HEADER + "\n", "no samples"),
    ],
)
def test_bad_execution_files_name_the_file_and_problem(tmp_path, text, message):
    write_dataset(tmp_path, {"s01_01_sw.csv": text})
    with pytest.raises(DataError, match=message) as err:
        spswhar.load(tmp_path, "watch")
    assert "s01_01_sw.csv" in str(err.value)


def test_repeated_timestamps_are_accepted(tmp_path):
    rows = good_rows().splitlines()
    rows[5] = rows[5].rsplit(",", 2)[0] + "," + rows[4].split(",")[6] + ",WALKING"
    write_dataset(tmp_path, {"s01_01_sw.csv": "\n".join(rows) + "\n"})
    assert len(spswhar.load(tmp_path, "watch").devices[0]) == 5


def test_missing_dataset_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match="zenodo"):
        spswhar.load(tmp_path / "nowhere")


def test_missing_subject_folder_is_named(tmp_path, spswhar_path):
    copy = tmp_path / "copy"
    shutil.copytree(spswhar_path / "DATA", copy / "DATA", ignore=shutil.ignore_patterns("s0*", "s1*", "s2*"))
    with pytest.raises(DataError, match="s01: subject folder"):
        spswhar.load(copy)


def test_unknown_device_is_refused(tmp_path):
    with pytest.raises(ValueError, match="watch"):
        spswhar.load(tmp_path, "ring")
