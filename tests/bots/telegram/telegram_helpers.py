"""Shared bits of the Telegram tests: settings changes and a nasty Markdown sample."""

from __future__ import annotations

from typing import Any

from core.config import Settings


def with_telegram(settings: Settings, **changes: Any) -> Settings:
    """``settings`` with some ``[telegram]`` keys changed."""
    return settings.model_copy(update={"telegram": settings.telegram.model_copy(update=changes)})


# Everything a model might write that could break Telegram's HTML parsing.
MARKDOWN = """# Result
The **total** is *42 €* and __due__ ~~today~~ tomorrow; 3 < 4 && 5 > 2.
- item with `a <b> & c`
* another item with snake_case_name and 2*3*4
**unclosed bold and *crossed** markers*
[the docs](https://example.org/a?b=1&c="2") and [not a link](javascript:alert(1))
```python
if a < b and c > d:
    print("<html>&amp;")
```
Stray ``` backticks, <script>alert(1)</script>, &nbsp; &#65; and an emoji 🐈."""
