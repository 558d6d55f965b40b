"""Documents settings: env prefix ``DOCUMENTS_``, falling back to ``THREADLINE_``."""

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from threadline.kit.settings import ServiceSettings

__all__ = ["Settings"]

MIB = 1024 * 1024
GIB = 1024 * MIB


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DOCUMENTS_", extra="ignore")

    service_name: str = "documents"
    s3_endpoint: str = "http://127.0.0.1:9000"
    s3_access_key: str = "threadline"
    s3_secret_key: SecretStr
    s3_bucket: str = "threadline-documents"
    s3_region: str = "us-east-1"
    s3_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description=(
            "Connect and read timeout of each object-storage request; with `s3_retries` it "
            "bounds how long a request waits for a MinIO that is down (then 503)."
        ),
    )
    s3_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Retries of a failed object-storage request (connection errors, 5xx).",
    )
    s3_public_endpoint: str | None = Field(
        default=None,
        description=(
            "Object storage as clients reach it, for presigned links (the signature covers "
            "the host); default: `s3_endpoint`."
        ),
    )

    max_upload_bytes: int = Field(
        default=5 * GIB, gt=0, description="Largest file (or zip archive) one upload may carry."
    )
    upload_part_size_bytes: int = Field(
        default=8 * MIB, ge=5 * MIB, description="S3 multipart part size (S3 minimum: 5 MiB)."
    )
    upload_buffer_parts: int = Field(
        default=2, ge=1, description="Parts buffered between the request and MinIO (memory bound)."
    )
    upload_parallel_parts: int = Field(
        default=3, ge=1, description="Parts of one upload sent to MinIO at the same time."
    )
    download_chunk_bytes: int = Field(
        default=4 * MIB,
        gt=0,
        description="Read size from MinIO per download chunk (two in flight).",
    )
    presigned_url_seconds: int = Field(
        default=300, ge=10, le=7 * 24 * 3600, description="Lifetime of download links."
    )
    spool_dir: str | None = Field(
        default=None, description="Where zip uploads are spooled before extraction (temp dir)."
    )
    abandoned_upload_hours: float = Field(
        default=24,
        gt=0,
        description="Uploads unfinished after this long were cut short by a crash: swept.",
    )
    zip_max_entries: int = Field(default=1000, gt=0)
    zip_max_total_bytes: int = Field(default=2 * GIB, gt=0)
    zip_max_ratio: float = Field(default=100.0, gt=1)
    zip_ratio_min_bytes: int = Field(
        default=1 * MIB, ge=0, description="Smaller entries skip the per-entry ratio check."
    )

    def _extra_secrets(self) -> dict[str, str]:
        return {"S3_SECRET_KEY": self.s3_secret_key.get_secret_value()}
