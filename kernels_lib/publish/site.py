"""The figures and the executed notebooks as a static HTML site that a browser opens offline.

`build_site` writes `build/site/`: `index.html` — the gallery of `figures/` first, each figure
with the paper item and caption that the README's gallery table gives it, then one link per
notebook — and one page per executed notebook, in JupyterLab's look (nbconvert's `lab` template).

Nothing on the site comes from the internet, so it works on a machine without one: plotly.js
(plotly's own copy) and MathJax 3 (the `django-static-mathjax` package's copy; it needs no
Django) are copied into the site, and the plotly figures that notebooks store as JSON are drawn
by that local plotly.js. MathJax draws equations as SVG: a page opened from file:// may not load
web fonts, which MathJax's other outputs need.
ipywidgets that take input need a running Python kernel; on the site such a widget is replaced
by a note saying so (open the notebook in JupyterLab to use it), while one that only displays
(a finished progress bar) shows its last state.

The site is assembled in a temporary folder that then replaces the old one whole
(`fileio.atomic_directory`): an interrupted build leaves the previous site as it was. The same
executed notebooks and figures give the same bytes.
"""
from __future__ import annotations

import copy
import html
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import SiteError
from ..fileio import atomic_directory, atomic_write_text
from ..paths import BUILD_DIR, FIGURES_DIR, REPO_ROOT

SITE_DIR = BUILD_DIR / "site"
README = REPO_ROOT / "README.md"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
#: Where the site keeps its copies of plotly.js, MathJax and the figures.
PLOTLY_JS = "plotly.min.js"
MATHJAX_DIR = "mathjax"
FIGURES = "figures"
#: MathJax 3's TeX-to-SVG component and the parts it loads on demand (TeX extensions, menu,
#: accessibility); not the speech engine or the web-font (CHTML) output.
MATHJAX_SCRIPT = "tex-svg.js"
MATHJAX_PARTS = ("input", "ui", "a11y", "output/svg", "output/svg.js")
_KINDS = {".png": "image", ".svg": "image", ".jpg": "image", ".jpeg": "image", ".html": "interactive",
          ".md": "table"}
_NUMBERED = re.compile(r"^(\d+)_.*\.ipynb$")
_GALLERY_HEADER = ("paper item", "what", "notebook")
_CODE = re.compile(r"`([^`]+)`")
WIDGET_NOTE = ("Interactive widget: it needs a running Python kernel, so it cannot work on this static page. "
               "Open this notebook in JupyterLab (README: “Working with the notebooks”) to use it; "
               "the cells below show the same view for the notebook's parameters.")


@dataclass(frozen=True)
class GalleryRow:
    """One row of the README's gallery table: which paper item, what it shows, the notebook, the files."""

    paper_item: str
    what: str
    notebook: str
    files: tuple[str, ...]

    def named(self, paths) -> list[str]:
        """The figure paths (relative to figures/) that this row names, in the row's order.

        A kernel size in a name stands for any size ("fig04_pca_7x7.png" also names the 5×5 run's
        "fig04_pca_5x5.png") and "*" for any text within a folder, as the README writes per-model files.
        """
        found = []
        for name in self.files:
            pattern = _file_pattern(name)
            found += [p for p in sorted(paths) if pattern.fullmatch(p) and p not in found]
        return found


@dataclass(frozen=True)
class GalleryItem:
    """A file of figures/ on the site: its path there, kind (image, interactive, table) and caption."""

    path: str
    kind: str
    paper_item: str | None
    what: str | None
    notebook: str | None


@dataclass(frozen=True)
class Site:
    """What `build_site` wrote: the index, one page per notebook (by notebook stem), the gallery."""

    root: Path
    index: Path
    pages: dict
    gallery: list


def _file_pattern(name: str) -> re.Pattern:
    parts = re.split(r"(\d+x\d+|\*)", name)
    regex = "".join(r"\d+x\d+" if p and re.fullmatch(r"\d+x\d+", p) else "[^/]*" if p == "*" else re.escape(p)
                    for p in parts)
    return re.compile(regex)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def gallery_table(readme: Path | str = README) -> list[GalleryRow]:
    """The rows of the README's gallery table ("paper item | what | notebook | file(s) in `figures/`").

    An absent README (the package installed without its repository) or one without that table
    gives no rows: the gallery then shows every figure without a paper item, and says so.
    """
    readme = Path(readme)
    if not readme.is_file():
        return []
    lines = readme.read_text(encoding="utf-8").splitlines()
    for start, line in enumerate(lines):
        if line.lstrip().startswith("|") and tuple(c.lower() for c in _cells(line)[:3]) == _GALLERY_HEADER:
            break
    else:
        return []
    rows = []
    for line in lines[start + 2:]:
        if not line.lstrip().startswith("|"):
            break
        cells = _cells(line)
        if len(cells) < 4:
            continue
        notebook = _CODE.findall(cells[2])
        rows.append(GalleryRow(cells[0], cells[1], notebook[0] if notebook else cells[2],
                               tuple(_CODE.findall(cells[3]))))
    return rows


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def writers(figures_dir: Path | str, files) -> dict[str, str]:
    """{file: notebook} for the `files` (paths relative to figures/) that a notebook recorded in
    figures/results/NN_name.json (`notebooks.save_results`), found by the end of the recorded path."""
    out = {}
    for record in sorted((Path(figures_dir) / "results").glob("*.json")):
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise SiteError(f"{record}: not a readable results file ({err}); re-run its notebook "
                            f"or delete the file") from err
        for value in _strings(data):
            value = value.replace("\\", "/")
            for rel in files:
                if value == rel or value.endswith("/" + rel):
                    out.setdefault(rel, record.stem)
    return out


def _other_run(figures_dir: Path, path: Path) -> bool:
    """Is `path` a results file, or inside a sub-folder that another run wrote (figures/<set>/, with its own results/)?"""
    parts = path.relative_to(figures_dir).parts
    return parts[0] == "results" or (len(parts) > 1 and (figures_dir / parts[0] / "results").is_dir())


def gallery(figures_dir: Path | str = FIGURES_DIR, readme: Path | str = README) -> list[GalleryItem]:
    """Every figure, interactive figure and table of figures/ (not those of other model sets, in
    figures/<set>/), in the order of the README's gallery table (then the others by notebook and
    name), each with its caption."""
    figures_dir = Path(figures_dir)
    files = sorted(p.relative_to(figures_dir).as_posix() for p in figures_dir.rglob("*")
                   if p.is_file() and p.suffix.lower() in _KINDS and not p.name.startswith(".")
                   and not _other_run(figures_dir, p)) if figures_dir.is_dir() else []
    by_writer = writers(figures_dir, files)
    rows = gallery_table(readme)
    items, placed = [], set()
    for row in rows:
        for rel in row.named(set(files) - placed):
            placed.add(rel)
            items.append(GalleryItem(rel, _KINDS[Path(rel).suffix.lower()], row.paper_item, row.what,
                                     by_writer.get(rel, row.notebook)))
    rest = [rel for rel in files if rel not in placed]
    rest.sort(key=lambda rel: (by_writer.get(rel) is None, by_writer.get(rel) or "", rel))
    items += [GalleryItem(rel, _KINDS[Path(rel).suffix.lower()], None, None, by_writer.get(rel)) for rel in rest]
    return items


def executed_notebooks(build_dir: Path | str, names=None) -> list[Path]:
    """The executed numbered notebooks of a build folder in numeric order (only `names`, if given)."""
    build_dir = Path(build_dir)
    found = [p for p in build_dir.glob("*.ipynb") if _NUMBERED.match(p.name)] if build_dir.is_dir() else []
    if names is not None:
        wanted = {Path(n).name for n in names}
        found = [p for p in found if p.name in wanted]
    return sorted(found, key=lambda p: (int(_NUMBERED.match(p.name).group(1)), p.name))


def _read_notebook(path: Path):
    import nbformat

    try:
        return nbformat.read(str(path), as_version=4)
    except Exception as err:  # nbformat raises several kinds on a damaged file
        raise SiteError(f"{path}: not a readable notebook ({type(err).__name__}: {err}); "
                        "re-run it with `python -m kernels_lib figures --only <its number>`") from err


def notebook_title(nb, fallback: str) -> str:
    """The first heading of the notebook's first markdown cell, else `fallback`."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
            break
    return fallback


def _inline(text: str) -> str:
    """Escaped text with `code` spans, for captions taken from the README."""
    return _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", html.escape(text, quote=False))


WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"
_BOXES = {"HBoxModel", "VBoxModel", "BoxModel", "GridBoxModel"}
_PROGRESS = {"FloatProgressModel", "IntProgressModel"}


def _widget_html(model_id: str, state: dict) -> str | None:
    """A widget's last state as static HTML when it only shows something (boxes of text and
    progress bars: a finished tqdm bar); None when it takes input (a dropdown, a slider, …)."""
    model = state.get(model_id)
    if model is None:
        return None
    name, values = model.get("model_name"), model.get("state", {})
    if name in _BOXES:
        parts = [_widget_html(child.removeprefix("IPY_MODEL_"), state) for child in values.get("children", [])]
        if any(part is None for part in parts):
            return None
        flow = "row" if name == "HBoxModel" else "column"
        return f'<div style="display:flex; flex-direction:{flow}; gap:6px; align-items:center">{"".join(parts)}</div>'
    if name in ("HTMLModel", "HTMLMathModel"):
        return f"<span>{values.get('value', '')}</span>"
    if name == "LabelModel":
        return f"<span>{html.escape(str(values.get('value', '')))}</span>"
    if name in _PROGRESS:
        return f'<progress value="{float(values.get("value", 0))}" max="{float(values.get("max", 100))}"></progress>'
    return None


def static_outputs(nb):
    """A copy of a notebook whose outputs a static page can show offline: plotly JSON becomes
    HTML drawn by the site's plotly.js (deterministic div ids); a widget that only displays
    (a finished progress bar) becomes its last state, one that takes input a note saying where
    it works. Returns (copy, number of plotly figures)."""
    import plotly.io as pio

    nb = copy.deepcopy(nb)
    widgets = nb.metadata.pop("widgets", {}).get(WIDGET_STATE_MIME, {}).get("state", {})
    n_plotly = 0
    for ci, cell in enumerate(nb.cells):
        for oi, output in enumerate(cell.get("outputs", [])):
            data = output.get("data")
            if not data:
                continue
            if PLOTLY_MIME in data:
                figure = data.pop(PLOTLY_MIME)
                height = (figure.get("layout") or {}).get("height") or 525
                data["text/html"] = pio.to_html(figure, include_plotlyjs=False, full_html=False, validate=False,
                                                div_id=f"plotly-cell{ci}-output{oi}", default_height=f"{height}px")
                n_plotly += 1
            if WIDGET_MIME in data:
                shown = _widget_html(data[WIDGET_MIME].get("model_id", ""), widgets)
                output["data"] = {"text/html": shown if shown is not None else
                                  f'<p class="site-widget-note">{html.escape(WIDGET_NOTE)}</p>',
                                  "text/plain": data.get("text/plain", "") if shown is not None else WIDGET_NOTE}
    return nb, n_plotly


_TEMPLATE_NAME = "kernels_lib_site.html.j2"
# nbconvert's lab page with the internet taken out: no require.js, mermaid or widget manager from
# a CDN; MathJax 3 (SVG output, configured as nbconvert configures MathJax 2) and plotly.js from the
# site's own copies; a bar linking back to the index.
_TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}
{%- if resources.site.plotly_js %}<script src="{{ resources.site.plotly_js }}"></script>{% endif -%}
{%- endblock html_head_js_requirejs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_js_mathjax -%}
<script>
window.MathJax = {
  tex: {inlineMath: [["$", "$"], ["\\(", "\\)"]], displayMath: [["$$", "$$"], ["\\[", "\\]"]],
        processEscapes: true, processEnvironments: true, tags: "ams"},
  svg: {fontCache: "global"}
};
</script>
<script src="{{ resources.site.mathjax }}" id="MathJax-script"></script>
{%- endblock html_head_js_mathjax -%}
{%- block html_head_css -%}
<style type="text/css">
.site-nav { font-family: var(--jp-ui-font-family); font-size: 14px; padding: 8px 16px;
            border-bottom: 1px solid #ddd; display: flex; gap: 24px; }
.site-widget-note { border-left: 4px solid #e67e22; padding: 4px 10px; background: #fdf2e9; }
</style>
{%- endblock html_head_css -%}
{%- block body_header -%}
{{ super() }}
<nav class="site-nav"><a href="index.html">&larr; all figures and notebooks</a>
{%- if resources.site.previous %}<a href="{{ resources.site.previous[0] }}">previous: {{ resources.site.previous[1] | e }}</a>{% endif -%}
{%- if resources.site.next %}<a href="{{ resources.site.next[0] }}">next: {{ resources.site.next[1] | e }}</a>{% endif -%}
</nav>
{%- endblock body_header -%}
"""


def _exporter():
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="lab", extra_loaders=[DictLoader({_TEMPLATE_NAME: _TEMPLATE})],
                        template_file=_TEMPLATE_NAME)


def _mathjax_source() -> Path:
    """MathJax 3's es5 folder inside the django-static-mathjax package (import name `mathjax`)."""
    try:
        import mathjax
    except ImportError as err:
        raise SiteError("the site needs MathJax from the 'django-static-mathjax' package, which is not installed: "
                        "`pip install 'django-static-mathjax>=3.2,<4'` (a kernels_lib dependency)") from err
    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (es5 / MATHJAX_SCRIPT).is_file():
        raise SiteError(f"{es5} holds no {MATHJAX_SCRIPT}; reinstall 'django-static-mathjax>=3.2,<4'")
    return es5


def _copy_mathjax(es5: Path, target: Path) -> None:
    target.mkdir(parents=True)
    shutil.copyfile(es5 / MATHJAX_SCRIPT, target / MATHJAX_SCRIPT)
    for part in MATHJAX_PARTS:
        if (es5 / part).is_dir():
            shutil.copytree(es5 / part, target / part)
        elif (es5 / part).is_file():
            shutil.copyfile(es5 / part, target / part)


_INDEX_CSS = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 0 20px 40px; color: #222; }
h1 { margin-bottom: 0.2em; } .lead { color: #555; margin-top: 0; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 18px; }
figure { margin: 0; border: 1px solid #ddd; border-radius: 6px; padding: 10px; background: #fff; min-width: 0; }
figure img { width: 100%; height: auto; display: block; }
figcaption { font-size: 13px; margin-top: 6px; line-height: 1.4; }
.item { font-weight: 600; } .file { color: #777; font-size: 12px; overflow-wrap: anywhere; }
.interactive { display: block; padding: 30px 10px; text-align: center; background: #f4f6f8; border-radius: 4px; }
details { font-size: 12px; overflow-x: auto; } table { border-collapse: collapse; }
td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
ol.notebooks li { margin: 4px 0; }
"""


def _table_html(path: Path) -> str:
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    return markdown2html_mistune(path.read_text(encoding="utf-8"))


def _figure_card(item: GalleryItem, figures_dir: Path, pages: dict) -> str:
    href = html.escape(f"{FIGURES}/{item.path}")
    if item.kind == "image":
        body = f'<a href="{href}"><img src="{href}" alt="{html.escape(item.path)}" loading="lazy"></a>'
    elif item.kind == "interactive":
        body = f'<a class="interactive" href="{href}">open the interactive figure (plotly: rotate, zoom, hover)</a>'
    else:
        body = f"<details><summary>table</summary>{_table_html(figures_dir / item.path)}</details>"
    caption = []
    if item.paper_item:
        caption.append(f'<span class="item">{_inline(item.paper_item)}</span>')
    if item.what:
        caption.append(_inline(item.what))
    if not item.paper_item and not item.what:
        caption.append("not in the README's gallery table")
    if item.notebook:
        stem = item.notebook
        link = f'<a href="{html.escape(pages[stem].name)}">{html.escape(stem)}</a>' if stem in pages else html.escape(stem)
        caption.append(f"notebook {link}")
    return (f"<figure>{body}<figcaption>{' · '.join(caption)}<br>"
            f'<span class="file">figures/{html.escape(item.path)}</span></figcaption></figure>')


def _index_html(items: list, figures_dir: Path, notebooks: list, pages: dict, model_sets: list) -> str:
    cards = "\n".join(_figure_card(item, figures_dir, pages) for item in items)
    listed = "\n".join(
        f'<li><a href="{html.escape(pages[stem].name)}">{html.escape(title)}</a> '
        f'<span class="file">{html.escape(stem)}.ipynb</span></li>' for stem, title in notebooks)
    sets = f" on the model set{'s' if len(model_sets) > 1 else ''} {html.escape(', '.join(model_sets))}" if model_sets else ""
    gallery_part = cards or "<p>No figures yet: run <code>make figures</code>.</p>"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>kernels_lib: figures and notebooks</title>
<style>{_INDEX_CSS}</style>
</head>
<body>
<h1>Identifiable clusters in trained depthwise convolutional kernels</h1>
<p class="lead">The figures and executed notebooks of <code>kernels_lib</code>, the reference implementation of
Babaiee, Kiasari, Rus and Grosu, <i>Unveiling the Unseen</i> (ICLR 2024), as the last
<code>make figures</code> run left them{sets}. Every page works offline.</p>
<h2 id="gallery">Gallery</h2>
<div class="gallery">
{gallery_part}
</div>
<h2 id="notebooks">Notebooks</h2>
<p>Each notebook as it ran (its outputs included); to change a parameter and re-run it, open it in JupyterLab.</p>
<ol class="notebooks">
{listed}
</ol>
</body>
</html>
"""


def build_site(notebooks, figures_dir: Path | str = FIGURES_DIR, site_dir: Path | str = SITE_DIR,
               readme: Path | str = README) -> Site:
    """Write the static site: index.html (gallery of `figures_dir`, then links) and one page per
    executed notebook in `notebooks` (paths), with plotly.js, MathJax and the figures copied in."""
    import plotly.offline

    notebooks = [Path(p) for p in notebooks]
    if not notebooks:
        raise SiteError("no executed notebook to put on the site; run `python -m kernels_lib figures` first")
    missing = [str(p) for p in notebooks if not p.is_file()]
    if missing:
        raise SiteError(f"executed notebook(s) not found: {', '.join(missing)}; run `python -m kernels_lib figures`")
    figures_dir = Path(figures_dir)
    site_dir = Path(site_dir)
    read = [(p, _read_notebook(p)) for p in notebooks]
    items = gallery(figures_dir, readme)
    titles = [(p.stem, notebook_title(nb, p.stem)) for p, nb in read]
    pages = {p.stem: site_dir / f"{p.stem}.html" for p, _ in read}
    model_sets = sorted({str(nb.metadata.get("papermill", {}).get("parameters", {}).get("model_set"))
                         for _, nb in read} - {"None"})
    mathjax = _mathjax_source()
    exporter = _exporter()
    with atomic_directory(site_dir, overwrite=True) as tmp:
        atomic_write_text(tmp / PLOTLY_JS, plotly.offline.get_plotlyjs())
        _copy_mathjax(mathjax, tmp / MATHJAX_DIR)
        for item in items:
            (tmp / FIGURES / item.path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(figures_dir / item.path, tmp / FIGURES / item.path)
        for i, (path, nb) in enumerate(read):
            page_nb, n_plotly = static_outputs(nb)
            neighbours = {"previous": titles[i - 1] if i > 0 else None,
                          "next": titles[i + 1] if i + 1 < len(titles) else None}
            site = {key: (pages[value[0]].name, value[1]) if value else None for key, value in neighbours.items()}
            site["plotly_js"] = PLOTLY_JS if n_plotly else None
            site["mathjax"] = f"{MATHJAX_DIR}/{MATHJAX_SCRIPT}"
            body, _ = exporter.from_notebook_node(page_nb, resources={"metadata": {"name": titles[i][1]}, "site": site})
            atomic_write_text(tmp / pages[path.stem].name, body)
        atomic_write_text(tmp / "index.html", _index_html(items, figures_dir, titles, pages, model_sets))
    return Site(site_dir, site_dir / "index.html", pages, items)
