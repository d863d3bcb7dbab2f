# Goalkeeper worker, starter and agent runner; one image, the command picks the role.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY goalkeeper goalkeeper
COPY workflows workflows
COPY activities activities
COPY interfaces interfaces
COPY runbooks runbooks
COPY worker.py starter.py agent.py ./
RUN pip install --no-cache-dir .
CMD ["python", "worker.py"]
