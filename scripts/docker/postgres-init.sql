-- One database per service, created on the first start of an empty data volume
-- (/docker-entrypoint-initdb.d). Each service applies its migrations at startup.
CREATE DATABASE api_studio;
CREATE DATABASE universal_webhook;
CREATE DATABASE clockify_addon;
