CREATE TABLE block_logs (
	id INTEGER NOT NULL, 
	run_id VARCHAR(40) NOT NULL, 
	block_id VARCHAR(200) NOT NULL, 
	attempt INTEGER NOT NULL, 
	line INTEGER NOT NULL, 
	level VARCHAR(10) NOT NULL, 
	message TEXT NOT NULL, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_block_logs PRIMARY KEY (id)
);

CREATE INDEX ix_block_logs_run_id_block_id_attempt ON block_logs (run_id, block_id, attempt);

CREATE TABLE block_runs (
	run_id VARCHAR(40) NOT NULL, 
	block_id VARCHAR(200) NOT NULL, 
	attempt INTEGER NOT NULL, 
	status VARCHAR(20) NOT NULL, 
	output JSON, 
	error JSON, 
	worker_id VARCHAR(80), 
	started_at DATETIME, 
	finished_at DATETIME, 
	CONSTRAINT pk_block_runs PRIMARY KEY (run_id, block_id, attempt)
);

CREATE TABLE events (
	run_id VARCHAR(40) NOT NULL, 
	seq INTEGER NOT NULL, 
	type VARCHAR(40) NOT NULL, 
	block_id VARCHAR(200), 
	data JSON, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_events PRIMARY KEY (run_id, seq)
);

CREATE TABLE runs (
	id VARCHAR(40) NOT NULL, 
	workflow_id VARCHAR(200) NOT NULL, 
	workflow_version INTEGER NOT NULL, 
	status VARCHAR(20) NOT NULL, 
	parameters JSON NOT NULL, 
	outputs JSON, 
	failure_reason TEXT, 
	idempotency_key VARCHAR(200), 
	created_at DATETIME NOT NULL, 
	started_at DATETIME, 
	finished_at DATETIME, 
	CONSTRAINT pk_runs PRIMARY KEY (id), 
	CONSTRAINT uq_runs_workflow_id_idempotency_key UNIQUE (workflow_id, idempotency_key)
);

CREATE INDEX ix_runs_status ON runs (status);

CREATE INDEX ix_runs_workflow_id_created_at ON runs (workflow_id, created_at);

CREATE TABLE signals (
	id INTEGER NOT NULL, 
	run_id VARCHAR(40) NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	payload JSON, 
	created_at DATETIME NOT NULL, 
	consumed_by VARCHAR(200), 
	CONSTRAINT pk_signals PRIMARY KEY (id)
);

CREATE INDEX ix_signals_run_id_name ON signals (run_id, name);

CREATE TABLE tasks (
	id VARCHAR(300) NOT NULL, 
	run_id VARCHAR(40) NOT NULL, 
	block_id VARCHAR(200), 
	attempt INTEGER DEFAULT '0' NOT NULL, 
	kind VARCHAR(20) NOT NULL, 
	due_at FLOAT NOT NULL, 
	worker_id VARCHAR(80), 
	lease_expires_at FLOAT, 
	token INTEGER DEFAULT '0' NOT NULL, 
	CONSTRAINT pk_tasks PRIMARY KEY (id)
);

CREATE INDEX ix_tasks_due_at ON tasks (due_at);

CREATE INDEX ix_tasks_run_id ON tasks (run_id);

CREATE INDEX ix_tasks_worker_id ON tasks (worker_id);

CREATE TABLE workers (
	id VARCHAR(80) NOT NULL, 
	hostname VARCHAR(255) NOT NULL, 
	pid INTEGER NOT NULL, 
	started_at DATETIME NOT NULL, 
	heartbeat_at FLOAT NOT NULL, 
	CONSTRAINT pk_workers PRIMARY KEY (id)
);

CREATE TABLE workflow_versions (
	workflow_id VARCHAR(200) NOT NULL, 
	version INTEGER NOT NULL, 
	definition JSON NOT NULL, 
	digest VARCHAR(64) NOT NULL, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_workflow_versions PRIMARY KEY (workflow_id, version)
);

CREATE TABLE workflows (
	id VARCHAR(200) NOT NULL, 
	latest_version INTEGER NOT NULL, 
	title TEXT, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	CONSTRAINT pk_workflows PRIMARY KEY (id)
);

