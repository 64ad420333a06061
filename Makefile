# The two commands. Both install what is missing first (Debian packages, the virtualenv).
.PHONY: run test install lock upgrade services-start services-stop services-status lint format clean

run:
	scripts/bootstrap run
	scripts/run

test:
	scripts/bootstrap test
	scripts/test

install:
	scripts/bootstrap test

# requirements/lock.txt: `make lock` after a requirement in a pyproject.toml changed (the other
# pins stay); `make upgrade` takes the newest releases of everything, installs them and runs the
# checks (the whole of `make test`), so that an upgrade is one deliberate commit of the lock.
lock:
	scripts/lock
	scripts/bootstrap test

upgrade:
	scripts/lock --upgrade
	scripts/bootstrap test
	scripts/test

services-start:
	scripts/services start

services-stop:
	scripts/services stop

services-status:
	scripts/services status

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && DEBUG=true FOUNDATION_ENV_FILE= .venv/bin/mypy .

format:
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .

clean:
	scripts/services stop || true
	rm -rf .run .venv staticfiles .coverage htmlcov
