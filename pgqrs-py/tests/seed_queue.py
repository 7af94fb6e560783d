# The seed's Python queue snippet, verbatim except for the DSN (taken from PGQRS_DSN).
import os

DSN = os.environ["PGQRS_DSN"]

import pgqrs
import json

# Connect to PostgreSQL
config = pgqrs.Config.from_dsn(DSN)

# Set up pgqrs (run once)
admin = pgqrs.Admin(config)
admin.install()
admin.create_queue("tasks")

# Producer: enqueue a job
producer = pgqrs.Producer(config, "tasks")
message = producer.enqueue(json.dumps({"task": "send_email", "to": "user@example.com"}))
print(f"Enqueued message: {message.id}")

# Consumer: process jobs
consumer = pgqrs.Consumer(config, "tasks")
msg = consumer.dequeue()
if msg:
    print(f"Processing: {msg.payload}")

    # Mark as complete
    consumer.archive(msg.id, "completed")
