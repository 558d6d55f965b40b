"""Documents settings: env prefix ``DOCUMENTS_``, falling back to ``THREADLINE_``."""

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from threadline.kit.settings import ServiceSettings

__all__ = ["Settings"]


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DOCUMENTS_", extra="ignore")

    service_name: str = "documents"
    s3_endpoint: str = "http://127.0.0.1:9000"
    s3_access_key: str = "threadline"
    s3_secret_key: SecretStr
    s3_bucket: str = "threadline-documents"
    s3_region: str = "us-east-1"

    def _extra_secrets(self) -> dict[str, str]:
        return {"S3_SECRET_KEY": self.s3_secret_key.get_secret_value()}
