"""BenchMARL's MAPPO with its GRU model, run through the shared peer driver (``benchmarl_mappo.py``), in the peers venv.

The driver builds actor and critic from ``benchmarl.models.mlp.MlpConfig(num_cells, layer_class,
activation_class)``; this wrapper swaps that name for BenchMARL's own ``GruConfig``
(a GRU of ``--gru-hidden`` units, then an MLP head of the driver's ``--hidden`` cells:
the architecture of mappo_td's ``body="gru"``) and runs the driver unchanged, so every
other setting and the output format are the driver's. BenchMARL trains a recurrent
model on whole rollouts (``frames_per_batch / n_envs`` steps) from a zero state.

    ~/peers/bin/python benchmarks/benchmarl_gru.py --gru-hidden 64 --hidden 64 64 --epochs 10
"""

import os
import runpy
import sys
from pathlib import Path

PEERS = Path(os.environ.get("MAPPO_TD_PEERS", Path(__file__).resolve().parents[2] / "shared" / "peers"))


def main() -> None:
    argv = sys.argv[1:]
    gru_hidden = 64
    if "--gru-hidden" in argv:
        i = argv.index("--gru-hidden")
        gru_hidden = int(argv[i + 1])
        del argv[i:i + 2]
    import benchmarl.models.mlp as mlp
    from benchmarl.models import GruConfig

    def gru_config(num_cells, layer_class, activation_class):
        return GruConfig(hidden_size=gru_hidden, n_layers=1, bias=True, dropout=0.0, compile=False, mlp_num_cells=list(num_cells),
                         mlp_layer_class=layer_class, mlp_activation_class=activation_class)

    mlp.MlpConfig = gru_config  # the driver imports the name from this module inside its main()
    print(f"benchmarl_gru: GruConfig(hidden_size={gru_hidden}, n_layers=1) + MLP head for actor and critic", flush=True)
    sys.argv = [str(PEERS / "benchmarl_mappo.py"), *argv]
    runpy.run_path(str(PEERS / "benchmarl_mappo.py"), run_name="__main__")


if __name__ == "__main__":
    main()
