"""The generated tables of docs/: a document gets the table of the declaration it names, and keeps it."""

from es4ps_devtools.docs import generated_sources, render_document


def test_a_document_gets_the_table_of_the_declaration_it_names():
    document = (
        "# Doc\n<!-- generated from es4ps_contract.transport:VARIABLES -->\nold\n<!-- end of generated table -->\n"
    )
    rendered = render_document(document)
    assert "old" not in rendered and "`ES4PS_BROKER_URL`" in rendered
    assert render_document(rendered) == rendered
    assert generated_sources(rendered) == ["es4ps_contract.transport:VARIABLES"]
