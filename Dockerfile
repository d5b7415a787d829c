# grand-challenge algorithm image for TrackRAD2025 (linux/amd64, run with --network none).
# Base: the official PyTorch runtime image carrying the CUDA build of the torch version pinned in
# requirements.txt (test/test_dockerfile.py checks that the two agree). A pinned tag, never latest.
# It ships Python BASE_PYTHON below (conda, /opt/conda/bin/python; the install step checks it, and
# test/test_dockerfile.py checks it against the pinned packages' Requires-Python) and the CUDA 12.8
# runtime, which needs an NVIDIA driver >= 570.26 on the host (>= 525.60.13 through CUDA's
# minor-version compatibility). grand-challenge's GPU machines, NVIDIA T4 (sm_75) and A10G
# (sm_86), are among the architectures torch's CUDA 12.8 build is compiled for; their driver is
# the platform's (docs/submission.md, "Base image, Python and GPU driver").
FROM --platform=linux/amd64 pytorch/pytorch:2.13.0-cuda12.8-cudnn9-runtime
ARG BASE_PYTHON=3.11

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /opt/app
COPY requirements.txt /opt/app/
# Installed as root into the base image's Python, where every user finds them: a `pip --user`
# install is found only by the user who made it, and the container may run under another one.
# torch is filtered out of the install: the base image already holds the CUDA build of the pinned
# version, and letting pip resolve torch==... could swap it for another wheel (CPU-only, or a
# different CUDA). The last command fails the build if the base's Python is not BASE_PYTHON or
# its torch is not the pinned one.
RUN grep -v -E '^torch([=<>!~ ]|$)' requirements.txt > /tmp/requirements-without-torch.txt \
 && python -m pip install --no-cache-dir -r /tmp/requirements-without-torch.txt \
 && rm /tmp/requirements-without-torch.txt \
 && python -c "import re, sys, torch; pin = re.search(r'^torch==(\S+)', open('requirements.txt').read(), re.M).group(1); assert '%d.%d' % sys.version_info[:2] == '${BASE_PYTHON}', (sys.version, '${BASE_PYTHON}'); assert torch.__version__.split('+')[0] == pin, (torch.__version__, pin); assert torch.version.cuda, 'base torch has no CUDA'"

# grand-challenge runs the container as a non-root user.
RUN groupadd --system user \
 && useradd --create-home --no-log-init --system --gid user user \
 && chown user:user /opt/app
USER user

COPY --chown=user:user resources /opt/app/resources
COPY --chown=user:user model /opt/app/model
COPY --chown=user:user inference.py /opt/app/

# The last step, a smoke test: the entry point runs the example case with its default tracker and
# the weights the image holds (on the CPU: ten small frames), so an image that cannot load its
# weights is never built. test/test_dockerfile.py traces this very command to check that every
# file it uses is copied above.
RUN python inference.py --case resources/example/Z_001 --output /tmp/smoke-test \
 && rm -r /tmp/smoke-test

ENTRYPOINT ["python", "inference.py"]
