# The seed's Python workflow snippet, verbatim inside `main()` (its `await`s need an async
# function); the DSN comes from PGQRS_DSN and `http_client` is a local stand-in that counts
# its requests.
import os

DSN = os.environ["PGQRS_DSN"]


class LocalHttpClient:
    def __init__(self) -> None:
        self.requests = 0

    async def get(self, url: str) -> dict:
        self.requests += 1
        return {"url": url, "items": 3}


http_client = LocalHttpClient()

from pgqrs import Admin, PyWorkflow
from pgqrs.decorators import workflow, step

@step
async def fetch_data(ctx: PyWorkflow, url: str) -> dict:
    return await http_client.get(url)

@step
async def process_data(ctx: PyWorkflow, data: dict) -> dict:
    return {"processed": True, "count": len(data)}

@workflow
async def data_pipeline(ctx: PyWorkflow, url: str):
    data = await fetch_data(ctx, url)
    result = await process_data(ctx, data)
    return result


async def main():
    # Usage
    admin = Admin(DSN, None)
    await admin.install()

    ctx = await admin.create_workflow("data_pipeline", "https://api.example.com")
    result = await data_pipeline(ctx, "https://api.example.com")
    return admin, ctx, result
