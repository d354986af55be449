"""The `simclr` assignment's grading cases: the points table, typical mistakes (``MUTANTS``)
grouped into submissions with one mistake per answer cell (``GROUPS``: the hidden tests grade each
function on its own, and training is skipped while autograding, so every "mistakes_*" submission
carries one mistake in each of several answer cells), a different correct implementation and the
submissions of its graded batch; :data:`PIPELINE` is what the common pipeline checks of
tests/test_grading_pipeline.py need. The checks specific to simclr are tests/test_assignment_simclr.py.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fsl_utils.grading.notebook import fill_solutions, solution_sources
from grading import assignment as shared

ASSIGNMENT = "simclr"
SOURCE, WEIGHTS, RELEASE = shared.files(ASSIGNMENT)
AUTOGRADED, MANUAL = 20, 5
POINTS = {
    "test_augment_pair_visible": 1, "test_augment_pair_hidden": 3,
    "test_nt_xent_visible": 1, "test_nt_xent_hidden": 4,
    "test_projection_head_visible": 1, "test_projection_head_hidden": 2,
    "test_linear_eval_visible": 1, "test_linear_eval_hidden": 3,
    "test_weights_10": 2, "test_weights_25": 2,
}
WEIGHT_TESTS = ("test_weights_10", "test_weights_25")

#: mistake -> (answer cell, (old, new) replacement in the reference answer, test cells that must fail,
#: a phrase the feedback must show for it)
MUTANTS: dict[str, tuple[str, tuple[str, str], tuple[str, ...], str]] = {
    # NT-Xent
    "k_equals_i_not_excluded": (
        "nt_xent", ('    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))  # k != i\n', ""),
        ("test_nt_xent_visible", "test_nt_xent_hidden"), "leave out k = i",
    ),
    "temperature_ignored": (
        "nt_xent", ("logits = z @ z.T / temperature", "logits = z @ z.T * temperature"),
        ("test_nt_xent_visible", "test_nt_xent_hidden"), "divide the cosine similarities by tau",
    ),
    "no_l2_normalisation": (
        "nt_xent", ("z = F.normalize(torch.cat([z1, z2]), dim=1)", "z = torch.cat([z1, z2])"),
        ("test_nt_xent_visible", "test_nt_xent_hidden"), "L2-normalise",  # the worked example has a norm-3 row
    ),
    "only_n_anchors": (
        "nt_xent", ("return F.cross_entropy(logits, targets)", "return F.cross_entropy(logits[:n], targets[:n])"),
        ("test_nt_xent_hidden",), "all 2N anchors",  # symmetric in the worked example, so the visible test passes
    ),
    "loss_detached": (
        "nt_xent", ("return F.cross_entropy(logits, targets)", "return F.cross_entropy(logits, targets).detach()"),
        ("test_nt_xent_visible", "test_nt_xent_hidden"), "no gradient reaches",
    ),
    "borrowed_course_nt_xent": (
        "nt_xent", ("    n = z1.shape[0]\n", "    from fsl_utils.ssl import nt_xent as course_nt_xent\n    return course_nt_xent(z1, z2, temperature)\n"),
        # the course's nt_xent is a stub in the grading sandbox (fsl_utils.grading.sandbox.stubs): both tests fail, naming it
        ("test_nt_xent_visible", "test_nt_xent_hidden"), "write it yourself",
    ),
    # augmentations
    "identical_views": (
        "augment_pair", ("return views(), views()", "first = views()\n    return first, first.clone()"),
        ("test_augment_pair_visible", "test_augment_pair_hidden"), "identical",
    ),
    "one_draw_per_batch": (
        "augment_pair", ("torch.stack([transform(image) for image in images.cpu()])", "transform(images.cpu())"),
        ("test_augment_pair_hidden",), "its own random parameters",
    ),
    "crops_without_colour": (
        "augment_pair", ("        v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),\n        v2.RandomGrayscale(p=0.2),\n", ""),
        ("test_augment_pair_hidden",), "colour jitter",
    ),
    "colour_without_crops": (
        "augment_pair", ("        v2.RandomResizedCrop(size, scale=(0.2, 1.0), antialias=True),\n        v2.RandomHorizontalFlip(),\n",
                         "        v2.Resize(size, antialias=True),\n"),
        ("test_augment_pair_hidden",), "random resized crop",
    ),
    # projection head
    "head_without_relu": (
        "projection_head", ("nn.BatchNorm1d(hidden_dim), nn.ReLU(),", "nn.BatchNorm1d(hidden_dim),"),
        ("test_projection_head_hidden",), "put a ReLU",
    ),
    "borrowed_course_head": (
        "projection_head", ("        self.net = nn.Sequential(",
                            "        from fsl_utils.ssl import ProjectionHead as CourseHead\n        self.net = CourseHead(in_dim, hidden_dim, out_dim)\n        _unused = ("),
        ("test_projection_head_visible", "test_projection_head_hidden"), "write it yourself",  # (a stub, as above)
    ),
    # linear evaluation
    "fits_on_test_labels": (
        "linear_eval", ("classifier.fit(scaler.transform(train_features), train_labels.cpu().numpy())",
                        "classifier.fit(scaler.transform(np.concatenate([train_features, test_features])),\n"
                        "                   np.concatenate([train_labels.cpu().numpy(), test_labels.cpu().numpy()]))"),
        ("test_linear_eval_hidden",), "test labels are wrong",
    ),
    "fine_tunes_the_encoder": (
        "linear_eval", ("    train_features = embed(encoder, train_images).double().numpy()\n",
                        "    _opt = torch.optim.SGD([*encoder.parameters(), torch.zeros(1, requires_grad=True)], lr=0.01)\n"
                        "    for _ in range(3 if list(encoder.parameters()) else 0):  # 'improve' the features on the labelled images first\n"
                        "        _f = encoder(train_images.float() / 255)\n"
                        "        _loss = F.cross_entropy(_f[:, : int(train_labels.max()) + 1], train_labels)\n"
                        "        _opt.zero_grad()\n"
                        "        _loss.backward()\n"
                        "        _opt.step()\n"
                        "    train_features = embed(encoder, train_images).double().numpy()\n"),
        ("test_linear_eval_visible", "test_linear_eval_hidden"), "changed the encoder",
    ),
    "features_in_train_mode": (
        "linear_eval", ("    train_features = embed(encoder, train_images).double().numpy()\n    test_features = embed(encoder, test_images).double().numpy()\n",
                        "    with torch.no_grad():  # but the encoder stays in train mode: BatchNorm updates its statistics\n"
                        "        train_features = encoder(train_images.float() / 255).double().numpy()\n"
                        "        test_features = encoder(test_images.float() / 255).double().numpy()\n"),
        ("test_linear_eval_visible", "test_linear_eval_hidden"), "BatchNorm running statistics",
    ),
}
#: submissions with one mistake per answer cell (the cells are graded independently)
GROUPS = {
    "mistakes_a": ("k_equals_i_not_excluded", "identical_views", "head_without_relu", "fits_on_test_labels"),
    "mistakes_b": ("temperature_ignored", "one_draw_per_batch", "fine_tunes_the_encoder"),
    "mistakes_c": ("no_l2_normalisation", "crops_without_colour", "features_in_train_mode"),
    "mistakes_d": ("only_n_anchors", "colour_without_crops"),
    "mistakes_e": ("loss_detached", "borrowed_course_head"),
    "mistakes_f": ("borrowed_course_nt_xent",),
}

#: A correct implementation written differently from the reference: one transform per view drawn
#: with torch's generator inside a loop, NT-Xent as an explicit loop over the anchors with logsumexp,
#: a head with BatchNorm built from attributes, and a torch logistic regression trained with LBFGS.
DIFFERENT_CORRECT = {
    "augment_pair": '''
def augment_pair(images, size=32):
    crop = v2.RandomResizedCrop((size, size), scale=(0.25, 1.0), ratio=(3 / 4, 4 / 3), antialias=True)
    colour = v2.Compose([v2.RandomApply([v2.ColorJitter(brightness=0.5, contrast=0.5, saturation=0.5, hue=0.1)], p=0.8),
                         v2.RandomApply([v2.Grayscale(num_output_channels=3)], p=0.2)])
    first, second = [], []
    for image in images:
        for out in (first, second):
            view = crop(image)
            if torch.rand(()) < 0.5:
                view = view.flip(-1)
            out.append(colour(view).to(torch.float32) / 255.0)
    return torch.stack(first), torch.stack(second)
''',
    "nt_xent": '''
def nt_xent(z1, z2, temperature=0.5):
    z = torch.cat([z1 / z1.norm(dim=1, keepdim=True), z2 / z2.norm(dim=1, keepdim=True)])
    two_n = len(z)
    losses = []
    for i in range(two_n):
        j = (i + two_n // 2) % two_n
        sims = (z[i] * z).sum(dim=1) / temperature
        keep = torch.arange(two_n) != i
        losses.append(torch.logsumexp(sims[keep], dim=0) - sims[j])
    return torch.stack(losses).sum() / two_n
''',
    "projection_head": '''
class ProjectionHead(nn.Module):
    def __init__(self, in_dim, hidden_dim=512, out_dim=128):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden_dim, bias=False)
        self.bn = nn.BatchNorm1d(hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, out_dim)

    def forward(self, h):
        return self.fc2(F.relu(self.bn(self.fc1(h))))
''',
    "linear_eval": '''
def linear_eval(encoder, train_images, train_labels, test_images, test_labels):
    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        train_f = torch.cat([encoder(train_images[i:i + 256].float() / 255) for i in range(0, len(train_images), 256)])
        test_f = torch.cat([encoder(test_images[i:i + 256].float() / 255) for i in range(0, len(test_images), 256)])
    encoder.train(was_training)
    mean, std = train_f.mean(0), train_f.std(0) + 1e-6
    train_f, test_f = (train_f - mean) / std, (test_f - mean) / std
    classifier = nn.Linear(train_f.shape[1], int(train_labels.max()) + 1)
    optimizer = torch.optim.LBFGS(classifier.parameters(), lr=0.5, max_iter=200)

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(classifier(train_f), train_labels) + 1e-3 * classifier.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return 100.0 * (classifier(test_f).argmax(1) == test_labels).float().mean().item()
''',
}


def answers(mistakes: tuple[str, ...] = ()) -> dict[str, str]:
    sources = solution_sources(SOURCE)
    for mutant in mistakes:
        cell, (old, new), _, _ = MUTANTS[mutant]
        shared.apply_mistake(sources, mutant, cell, old, new)
    return sources


def failing_cells(mistakes: tuple[str, ...]) -> set[str]:
    return {cell for m in mistakes for cell in MUTANTS[m][2]}


def expected(failing) -> float:
    return float(AUTOGRADED - sum(POINTS[c] for c in failing))


def submissions(root: Path, released: Path) -> dict:
    """Every case of the simclr batch: student -> (notebook, weights, expected autograded score)."""
    from fsl_utils.encoders import CifarCNN

    untrained = root / "untrained.pt"
    torch.manual_seed(0)
    torch.save(CifarCNN(n_classes=0).state_dict(), untrained)
    cases = shared.usual_submissions(ASSIGNMENT, released, answers(), untrained, float(AUTOGRADED), expected(WEIGHT_TESTS), DIFFERENT_CORRECT)
    for student, mistakes in GROUPS.items():
        cases[student] = (fill_solutions(released, answers(mistakes)), WEIGHTS, expected(failing_cells(mistakes)))
    return cases


#: What tests/test_grading_pipeline.py checks of the simclr batch (the ``graded_simclr`` fixture).
PIPELINE = shared.Pipeline(
    assignment=ASSIGNMENT, fixture="graded_simclr", points=POINTS, autograded=AUTOGRADED, manual=MANUAL,
    students=("reference", "untouched_release", "untrained_weights", "different_correct", *GROUPS),
    failing={"reference": (), "different_correct": (), "untrained_weights": WEIGHT_TESTS,
             **{student: failing_cells(mistakes) for student, mistakes in GROUPS.items()}},
    release_markers=("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "masked_fill", "run_hidden_test", "def oracle_nt_xent", "LogisticRegression("),
    required_files=("simclr.pt",),
    feedback_markers=("hidden_tests.py", "BORROWED = (", "def oracle_"),
    explanations={"untrained_weights": ("10 labels per class", "at least"),
                  **{student: tuple(MUTANTS[m][3] for m in mistakes) for student, mistakes in GROUPS.items()}},
)
