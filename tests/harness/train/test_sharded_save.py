"""Saving a sharded run (FSDP, ZeRO-3): every rank joins the gather, rank 0 alone clears the folder and writes.

FSDP and DeepSpeed cannot start on this CPU machine (accelerate enables FSDP only on GPU process groups; no
deepspeed), so the trainer here is a stand-in recording what the save asks of it."""

from types import SimpleNamespace

from harness.train.train import _save_trained, _sharded


class _Plugin:
    def __init__(self):
        self.state_dict_type = "StateDictType.SHARDED_STATE_DICT"

    def set_state_dict_type(self, kind):
        self.state_dict_type = f"StateDictType.{kind}"


class _Trainer:
    def __init__(self, rank: int, fsdp: bool, calls: list):
        self.rank, self.calls = rank, calls
        self.is_fsdp_enabled, self.is_deepspeed_enabled = fsdp, False
        self.plugin = _Plugin() if fsdp else None
        self.accelerator = SimpleNamespace(state=SimpleNamespace(fsdp_plugin=self.plugin),
                                           wait_for_everyone=lambda: calls.append((rank, "barrier")))

    def is_world_process_zero(self):
        return self.rank == 0

    def save_model(self, path):
        self.calls.append((self.rank, "save", self.plugin.state_dict_type if self.plugin else None))


def test_every_fsdp_rank_gathers_the_full_state_dict_after_rank_0_cleared_the_folder(tmp_path):
    staged = tmp_path / "final"
    (staged / "model").mkdir(parents=True)
    (staged / "model" / "stale.safetensors").write_text("from an interrupted save")
    calls = []
    one = _Trainer(1, fsdp=True, calls=calls)
    assert _sharded(one)
    _save_trained(one, staged)
    assert (staged / "model" / "stale.safetensors").exists()  # only rank 0 clears
    zero = _Trainer(0, fsdp=True, calls=calls)
    _save_trained(zero, staged)
    assert not (staged / "model").exists()
    full = "StateDictType.FULL_STATE_DICT"
    assert calls == [(1, "barrier"), (1, "save", full), (0, "barrier"), (0, "save", full)]


def test_a_ddp_run_saves_from_rank_0_without_a_barrier(tmp_path):
    calls = []
    trainer = _Trainer(0, fsdp=False, calls=calls)
    assert not _sharded(trainer)
    _save_trained(trainer, tmp_path / "final")
    assert calls == [(0, "save", None)]
