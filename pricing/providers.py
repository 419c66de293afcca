"""One provider name per company, whatever a price map or a person spells it.

LiteLLM's map names the route a model is called through (`openai`, `vertex_ai-anthropic_models`,
`bedrock_converse`, `dashscope`); aicost names the company that bills the call, as the seeded
prices do (OpenAI, Anthropic, Google, DeepSeek, Alibaba Cloud). A Claude model called through
Vertex AI is billed by Google, through Bedrock by Amazon Web Services."""

# Lower-case spelling -> the provider aicost shows. Spellings not listed keep their own name, matched
# without regard to case against the providers already priced (see pricing.services).
PROVIDER_SPELLINGS: dict[str, str] = {
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
    "vertex_ai-deepseek_models": "Google",
    "vertex_ai-embedding-models": "Google",
    "vertex_ai-minimax_models": "Google",
    "vertex_ai-moonshot_models": "Google",
    "vertex_ai-openai_models": "Google",
    "vertex_ai-qwen_models": "Google",
    "vertex_ai-zai_models": "Google",
    "deepseek": "DeepSeek",
    "dashscope": "Alibaba Cloud",
    "alibaba": "Alibaba Cloud",
    "alibaba cloud": "Alibaba Cloud",
    "qwen": "Alibaba Cloud",
    "qwencloud": "Alibaba Cloud",
    "qwen_ai_platform": "Alibaba Cloud",
    "bedrock": "Amazon Web Services",
    "bedrock_converse": "Amazon Web Services",
    "bedrock_mantle": "Amazon Web Services",
    "sagemaker": "Amazon Web Services",
    "azure": "Microsoft Azure",
    "azure_ai": "Microsoft Azure",
    "azure_text": "Microsoft Azure",
    "mistral": "Mistral AI",
    "codestral": "Mistral AI",
    "text-completion-codestral": "Mistral AI",
    "xai": "xAI",
    "groq": "Groq",
    "cohere": "Cohere",
    "cohere_chat": "Cohere",
    "together_ai": "Together AI",
    "fireworks_ai": "Fireworks AI",
    "fireworks_ai-embedding-models": "Fireworks AI",
    "perplexity": "Perplexity",
    "moonshot": "Moonshot AI",
    "zhipuai": "Zhipu AI",
    "zai": "Zhipu AI",
    "bigmodel": "Zhipu AI",
    "inception": "Inception Labs",
    "text-completion-inception": "Inception Labs",
    "volcengine": "Volcengine",
}


def provider_canonical(name: str, *, known: list[str] = ()) -> str:
    """The provider name aicost uses for `name`: the company's (PROVIDER_SPELLINGS), else the
    spelling of a provider in `known` equal to it without regard to case, else `name` trimmed."""
    trimmed = " ".join(name.split())
    canonical = PROVIDER_SPELLINGS.get(trimmed.lower())
    if canonical is not None:
        return canonical
    return next((provider for provider in known if provider.lower() == trimmed.lower()), trimmed)
