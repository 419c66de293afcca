"""One provider name per company: rows imported with a price map's route name (`openai`, `vertex_ai`,
`dashscope`, ...) or another spelling of a priced provider get the company's name.

The spellings are frozen here, as pricing.providers had them when this migration was written."""

from django.db import migrations

SPELLINGS = {
    "openai": "OpenAI",
    "text-completion-openai": "OpenAI",
    "anthropic": "Anthropic",
    "google": "Google",
    "gemini": "Google",
    "vertex_ai": "Google",
    "vertex_ai-anthropic_models": "Google",
    "vertex_ai-language-models": "Google",
    "vertex_ai-chat-models": "Google",
    "vertex_ai-text-models": "Google",
    "vertex_ai-code-text-models": "Google",
    "vertex_ai-code-chat-models": "Google",
    "vertex_ai-mistral_models": "Google",
    "vertex_ai-llama_models": "Google",
    "vertex_ai-ai21_models": "Google",
    "deepseek": "DeepSeek",
    "dashscope": "Alibaba Cloud",
    "alibaba": "Alibaba Cloud",
    "alibaba cloud": "Alibaba Cloud",
    "qwen": "Alibaba Cloud",
    "bedrock": "Amazon Web Services",
    "bedrock_converse": "Amazon Web Services",
    "azure": "Microsoft Azure",
    "azure_ai": "Microsoft Azure",
    "azure_text": "Microsoft Azure",
    "mistral": "Mistral AI",
    "codestral": "Mistral AI",
    "xai": "xAI",
    "groq": "Groq",
    "cohere": "Cohere",
    "cohere_chat": "Cohere",
    "together_ai": "Together AI",
    "fireworks_ai": "Fireworks AI",
    "perplexity": "Perplexity",
    "moonshot": "Moonshot AI",
    "zhipuai": "Zhipu AI",
    "volcengine": "Volcengine",
}


def _canonical(name: str, known: list[str]) -> str:
    trimmed = " ".join(name.split())
    if trimmed.lower() in SPELLINGS:
        return SPELLINGS[trimmed.lower()]
    return next((provider for provider in known if provider.lower() == trimmed.lower()), trimmed)


def providers_canonical(apps, schema_editor):
    ModelPricing = apps.get_model("pricing", "ModelPricing")
    rows = ModelPricing.objects.using(schema_editor.connection.alias).order_by("pk")
    known: list[str] = []
    for pricing in rows:
        name = _canonical(pricing.provider, known)
        if name not in known:
            known.append(name)
        if name != pricing.provider:
            pricing.provider = name
            pricing.save(update_fields=["provider"])


class Migration(migrations.Migration):
    dependencies = [("pricing", "0003_counters_to_usage")]

    operations = [migrations.RunPython(providers_canonical, migrations.RunPython.noop)]
