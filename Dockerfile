# Goalkeeper worker, starter and agent runner; one image, the command picks the role.
FROM python:3.11-slim
# Goalkeeper runs as an unprivileged user of its own. Agents' keys and credentials live in
# volumes mounted at /var/lib/goalkeeper/keys and /var/lib/goalkeeper/credentials, which a
# new volume takes (owner-only) from these directories.
RUN useradd --system --user-group --uid 10001 --create-home --home-dir /home/goalkeeper \
        goalkeeper \
    && install -d -o goalkeeper -g goalkeeper -m 700 /var/lib/goalkeeper/keys \
        /var/lib/goalkeeper/credentials
WORKDIR /app
COPY pyproject.toml README.md ./
COPY goalkeeper goalkeeper
COPY workflows workflows
COPY activities activities
COPY store store
COPY monitoring monitoring
COPY interfaces interfaces
COPY runbooks runbooks
COPY worker.py starter.py agent.py ./
RUN pip install --no-cache-dir .
USER goalkeeper
CMD ["python", "worker.py"]
