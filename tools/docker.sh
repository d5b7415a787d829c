# Sourced by build.sh and export.sh, after they define fail().
# One line, with Docker's own reason, unless a Docker daemon answers: the client alone prints
# several lines and fails later in a way that hides the reason.
check_docker() {
    command -v docker >/dev/null || fail "docker is not installed (https://docs.docker.com/get-docker/)"
    local reason
    if ! reason=$(docker info --format '{{.ServerVersion}}' 2>&1 >/dev/null); then
        reason=$(printf '%s\n' "$reason" | sed '/^[[:space:]]*$/d' | head -n 1)
        fail "cannot reach the Docker daemon (${reason:-no answer}); start it, or set DOCKER_HOST"
    fi
}
