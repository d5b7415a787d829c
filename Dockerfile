# grand-challenge algorithm image for TrackRAD2025 (linux/amd64, run with --network none).
# Base: the official PyTorch runtime image carrying the CUDA build of the torch version pinned in
# requirements.txt (test/test_dockerfile.py checks that the two agree). A pinned tag, never latest.
FROM --platform=linux/amd64 pytorch/pytorch:2.13.0-cuda12.8-cudnn9-runtime

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH="/home/user/.local/bin:${PATH}"

# grand-challenge runs the container as a non-root user.
RUN groupadd --system user \
 && useradd --create-home --no-log-init --system --gid user user \
 && mkdir -p /opt/app \
 && chown user:user /opt/app
USER user
WORKDIR /opt/app

COPY --chown=user:user requirements.txt /opt/app/
# torch is filtered out of the install: the base image already holds the CUDA build of the pinned
# version, and letting pip resolve torch==... could swap it for another wheel (CPU-only, or a
# different CUDA). The last command fails the build if the base's torch is not the pinned one.
RUN grep -v -E '^torch([=<>!~ ]|$)' requirements.txt > /tmp/requirements-without-torch.txt \
 && python -m pip install --user --no-cache-dir -r /tmp/requirements-without-torch.txt \
 && python -c "import re, torch; pin = re.search(r'^torch==(\S+)', open('requirements.txt').read(), re.M).group(1); assert torch.__version__.split('+')[0] == pin, (torch.__version__, pin); assert torch.version.cuda, 'base torch has no CUDA'"

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
