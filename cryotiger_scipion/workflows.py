"""Workflow templates (templates/*.json.template) loaded into a Scipion project
without the GUI: used by scripts/demo.py and the template test.

A template is free text followed by a JSON list of protocols; values to fill
are written ``~Title|default|type|alias~`` (pyworkflow.template).  Only the
Scipion side uses this module (it imports pyworkflow).
"""
import os
from typing import Dict, Optional

PLUGIN = "cryotiger_scipion"


def getTemplate(name: str):
    """The plugin's template ``name`` (file name without .json.template), as
    Scipion's template list finds it (``Plugin.getTemplates()``): a
    pyworkflow Template.  Raises ValueError when there is no such template."""
    import pyworkflow as pw
    plugin = pw.Config.getDomain().getPlugins()[PLUGIN]._pluginInstance
    for t in plugin.getTemplates():
        if t.name == name:
            return t
    raise ValueError("template '%s' not found in %s" % (name, plugin.getPluginTemplateDir()))


def fillTemplate(name: str, values: Dict[str, object]) -> str:
    """Fill the template's placeholders by alias (values are converted to
    str and checked by pyworkflow: folders must exist, integers be digits...)
    and return the path of the resulting workflow JSON (a temporary file).
    Placeholders not in ``values`` keep their defaults.  Raises ValueError
    for an unknown template or alias (naming the aliases it has), and what
    pyworkflow raises for a value it refuses."""
    template = getTemplate(name)
    template.replaceEnvVariables()
    template.parseContent()
    aliases = {p.getAlias() for p in template.getParams().values()}
    unknown = set(values) - aliases
    if unknown:
        raise ValueError("template '%s' has no placeholder(s) %s; it has %s"
                         % (name, ", ".join(sorted(unknown)), ", ".join(sorted(aliases))))
    for alias, value in values.items():
        template.setParamValue(alias, str(value))
    return template.createTemplateFile()


def loadTemplate(project, name: str, values: Optional[Dict[str, object]] = None) -> list:
    """Fill template ``name`` and load its protocols into ``project`` (as
    File > Import workflow does).  Returns the new protocols in template
    order (not launched).  ``project``: a pyworkflow Project; ``values``:
    {alias: value} as for :func:`fillTemplate` (which raises for bad ones)."""
    path = fillTemplate(name, values or {})
    try:
        protocols = project.loadProtocols(path)
    finally:
        os.remove(path)
    return list(protocols.values())
