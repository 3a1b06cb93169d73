"""The lab authoring API: the ``Lab`` contract, the context a lab records through, the hook
specifications and the files a lab is made of. Imports only labrunner.records and below."""
