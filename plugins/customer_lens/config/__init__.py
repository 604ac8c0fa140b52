"""Configuration: where things live (``settings``), the process environment tools run with
(``environment``), the company's sources file (``source_config``) and the data contract the dbt project is
built from (``contract``)."""
