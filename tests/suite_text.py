"""A small valid suite (a quadratic under GD, under a second) that tests edit."""

VALID = '''
schema = 1

[suite]
id = "test.tiny"
claim = "GD on a quadratic converges and lambda_max equals the top eigenvalue."
source = "test"
devices = ["cpu", "cuda"]
dtype = "float64"
seeds = [0, 1]
slow = false

[problem]
kind = "quadratic"
eigenvalues = [4.0, 1.0, 0.5]

[optimizer]
kind = "gd"
lr = [0.1, 0.2]

[run]
steps = 60

[measures.loss]
every = 1

[measures.lambda_max]
every = 10
tol = 1e-8

[events.low_loss]
measure = "loss"
below = 1e-3

[[expect]]
name = "sharpness_below_edge"
measure = "lambda_max"
predict = "gd_edge"
statistic = "max"
check = "le"
bound = 0.9

[[expect]]
name = "loss_falls"
measure = "loss"
check = "reaches"
direction = "below"
threshold = 1e-3
within = 60

[[expect]]
name = "monotone_after_event"
measure = "loss"
statistic = "frac_increasing"
check = "le"
bound = 0.0
window = { anchor = "low_loss", offset = 0 }
'''


def write(tmp_path, text=VALID, name="suite.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


# a sweep expectation to append to VALID: the loss after 10 steps falls as lr grows (BOUND: its check)
SWEEP = """
[[sweep_expect]]
name = "larger_lr_lower_loss"
measure = "loss"
statistic = "last"
window = { anchor = "start", length = 10 }
across = "lr"
aggregate = "spearman"
check = "le"
bound = BOUND
"""
