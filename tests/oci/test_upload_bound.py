"""Open uploads are bounded per registry (`max_open_uploads`): past the bound a new upload is
refused with a clear error on both doors, and it is accepted again once one is done."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.conftest import EcrdServer
from tests.oci.helpers import error_codes

BOUND = 3


@pytest.fixture(scope="module")
def bounded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EcrdServer]:
    instance = EcrdServer(
        tmp_path_factory.mktemp("bounded") / "data",
        environment={"ECRD_MAX_OPEN_UPLOADS": str(BOUND)},
    )
    instance.start()
    yield instance
    instance.stop()


def test_uploads_past_the_bound_are_refused_until_one_is_done(
    bounded_server: EcrdServer, tmp_path: Path
) -> None:
    server = bounded_server
    ecr = server.ecr()
    with server.http() as client:
        # given as many open uploads as the registry allows, in two repositories
        locations = [client.post("/v2/bound/one/blobs/uploads/").headers["Location"]]
        locations += [
            client.post("/v2/bound/two/blobs/uploads/").headers["Location"]
            for _ in range(BOUND - 1)
        ]
        # when one more is started, by /v2/ and by the API
        refused = client.post("/v2/bound/three/blobs/uploads/")
        with pytest.raises(ClientError) as raised:
            ecr.initiate_layer_upload(repositoryName="bound/one")
        # then /v2/ says 429 TOOMANYREQUESTS and the API its parameter error, both naming
        # the bound, and nothing was created for the refused one
        assert refused.status_code == 429, refused.text
        assert error_codes(refused) == ["TOOMANYREQUESTS"]
        assert "max_open_uploads" in refused.json()["errors"][0]["message"]
        error = raised.value.response["Error"]
        assert error["Code"] == "InvalidParameterException", error
        assert "max_open_uploads" in error["Message"]
        assert int(server.metadata_query("SELECT count(*) FROM uploads")[0][0]) == BOUND
        repositories = {r["repositoryName"] for r in ecr.describe_repositories()["repositories"]}
        assert "bound/three" not in repositories
        # when one upload is cancelled, then a new one is accepted again
        assert client.delete(locations[0]).status_code == 204
        assert client.post("/v2/bound/three/blobs/uploads/").status_code == 202
