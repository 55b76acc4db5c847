"""Every word the operator console shows, in Russian, in one place (templates get this module as `t`)."""

# Russian text throughout: Cyrillic letters that look like Latin ones are meant.

from __future__ import annotations

from typing import Any

# --- frame --------------------------------------------------------------------------------------------
product = "smsqueue"
console = "Операторская консоль"
nav_label = "Разделы"
nav_messages = "Сообщения"
nav_dashboard = "Сводка"
nav_entities = "Организации"
nav_providers = "Провайдеры"
nav_jobs = "Рассылки"
nav_settings = "Настройки"
sign_out = "Выйти"
skip_to_content = "Перейти к содержимому"
signed_in_admin = "Администратор"
signed_in_entity = "Ключ организаций: {codes}"
times_in_zone = "Время: {zone}"
no_value = "—"

# --- sign-in ------------------------------------------------------------------------------------------
sign_in_title = "Вход"
sign_in_lead = "Войдите с ключом API: ключом администратора или ключом организации."
key_label = "Ключ API"
key_hint = "Начинается с sq_. Ключ не сохраняется в браузере в открытом виде."
zone_label = "Часовой пояс"
zone_hint = "В нём показываются все даты и время."
sign_in_button = "Войти"
wrong_key = "Ключ не подошёл: он неизвестен или отозван."
key_required = "Введите ключ."
signed_out = "Вы вышли из консоли."
session_ended = "Сеанс закончился: войдите снова."

# --- settings -----------------------------------------------------------------------------------------
settings_title = "Настройки"
settings_saved = "Сохранено."
save = "Сохранить"
unknown_zone = "Такого часового пояса нет: укажите зону IANA, например Europe/Moscow."
zone_other_hint = "Любая зона IANA, например Asia/Yekaterinburg или UTC."

# --- message search -----------------------------------------------------------------------------------
search_title = "Поиск сообщений"
search_button = "Найти"
search_reset = "Сбросить"
field_to = "Номер"
field_to_hint = "В любом виде: +7 916 123-45-67, 89161234567"
field_reference = "Ваш идентификатор (reference)"
field_id = "ID сообщения"
field_debtor = "Должник (debtor)"
field_job = "ID рассылки"
invalid_job = "Это не ID рассылки (UUID)."
field_status = "Статус"
field_entity = "Организация"
field_after = "Создано после"
field_before = "Создано до"
any_entity = "Все"
invalid_phone = "Номер не распознан."
invalid_id = "Это не ID сообщения (UUID)."
invalid_time = "Укажите дату и время."
invalid_cursor = "Ссылка на страницу устарела: поиск начат заново."
too_broad = "Запрос слишком широкий и не уложился во время: сузьте период или добавьте условия."
scanned = (
    "Просмотрены {count} последних сообщений в этих пределах: по статусу ищется участками. "
    "«Дальше» продолжит с того места, где просмотр остановился; номер, reference или период сужают поиск."
)
results = "Найдено на этой странице: {count}"
nothing_found = "Ничего не найдено."
next_page = "Дальше"
first_page = "В начало"
col_created = "Создано"
col_to = "Номер"
col_entity = "Организация"
col_status = "Статус"
col_provider = "Провайдер"
col_reference = "Reference"
col_text = "Текст"
col_debtor = "Должник"

# --- message page -------------------------------------------------------------------------------------
message_title = "Сообщение"
message_not_found = "Сообщение не найдено."
back_to_search = "← К поиску"
text_heading = "Текст"
details_heading = "Сведения"
events_heading = "История статусов"
webhooks_heading = "Уведомления (webhooks)"
webhooks_admin_only = "Попытки уведомлений видны только администратору."
no_webhooks = "Уведомлений не отправлялось."
label_id = "ID"
label_entity = "Организация"
label_to = "Номер"
label_sender = "Отправитель"
label_status = "Статус"
label_reason = "Причина"
label_provider = "Провайдер"
label_provider_message_id = "ID у провайдера"
label_segments = "Частей"
label_encoding = "Кодировка"
label_send_at = "Отправить не раньше"
label_valid_until = "Действительно до"
label_recipient_timezone = "Пояс получателя"
label_callback_url = "Адрес уведомлений"
label_reference = "Reference"
label_debtor = "Должник (debtor)"
label_created = "Создано"
label_updated = "Изменено"
col_seq = "№"
col_time = "Время"
col_reason = "Причина"
col_answer = "Ответ провайдера и подробности"
col_attempt = "Попытка"
col_http = "HTTP-код"
col_error = "Ошибка"

# --- dashboard ----------------------------------------------------------------------------------------
dashboard_title = "Сводка"
dashboard_lead = "Сообщения, созданные за последний час и за последние сутки."
refresh = "Обновить"
auto_refresh = "Обновляется каждые 30 секунд."
last_hour = "За час"
last_day = "За сутки"
by_status = "По статусам"
by_provider = "По провайдерам"
chart_title = "Сообщения по часам за сутки"
chart_desc = "Столбцы по часам, по группам статусов; таблицы ниже дают те же числа."
provider_errors = "Ошибки провайдеров"
provider_errors_lead = (
    "Сообщения за сутки, закончившиеся ошибкой, недоставкой или отказом, по провайдерам и причинам."
)
provider_errors_total = "Сбои вызовов провайдеров с начала учёта (включая повторённые успешно)"
no_provider = "без провайдера"
col_count = "Сообщений"
col_code = "Код ошибки"
total = "Всего"
no_errors = "Ошибок нет."
group_delivered = "доставлено"
group_in_flight = "в пути"
group_failed = "не доставлено или ошибка"
group_refused = "отклонено, отменено"

# --- entities -----------------------------------------------------------------------------------------
entities_title = "Организации"
entities_lead_entity = "Организации вашего ключа. Менять их настройки может администратор."
entity_title = "Организация"
back_to_entities = "← К организациям"
col_entity_code = "Код"
col_name = "Название"
col_active = "Работает"
col_timezone = "Часовой пояс"
col_window = "Окно отправки"
col_fz = "230-ФЗ"
col_providers = "Провайдеры"
yes = "да"
no = "нет"
on = "включено"
off = "выключено"
no_entities = "Организаций нет."
entity_inactive = "Организация отключена: её сообщения отклоняются."
label_inn = "ИНН"
label_timezone = "Часовой пояс организации"
label_created_entity = "Создана"
label_updated_entity = "Изменена"
saved_window = "Окно отправки сохранено."
saved_fz = "Настройки 230-ФЗ сохранены."
saved_providers = "Провайдеры сохранены."
form_has_errors = "Не сохранено: исправьте отмеченные поля."
read_only = "Только просмотр: менять настройки может ключ администратора."

window_heading = "Окно отправки"
window_lead = (
    "Время получателя, с «с» включительно до «до» не включая; «с» позже «до» — окно через полночь, "
    "00:00–24:00 — весь день."
)
window_from = "С (ЧЧ:ММ)"
window_to = "До (ЧЧ:ММ)"
on_window_label = "Вне окна"
on_window_defer = "отложить до ближайшего разрешённого времени"
on_window_reject = "отклонить"

fz_heading = "Настройки 230-ФЗ"
fz_lead = "Лимиты на одного получателя и часы, когда разрешено взаимодействие (время получателя)."
fz_enabled = "Соблюдать 230-ФЗ"
fz_per_day = "В день"
fz_per_week = "В неделю"
fz_per_month = "В месяц"
fz_limits = "Лимиты сообщений"
fz_weekday_hours = "Рабочие дни"
fz_weekend_hours = "Выходные и праздники"
fz_hours_from = "С"
fz_hours_to = "До"
fz_holidays = "Праздники как выходные (производственный календарь)"
fz_on_limit = "При достижении лимита"
fz_on_limit_reject = "отклонить"
fz_on_limit_defer = "отложить до периода, где есть место"

links_heading = "Провайдеры и их порядок"
links_lead = "Отправитель пробует провайдеров по приоритету: 1 — первым."
col_priority = "Приоритет"
col_sender = "Отправитель"
col_link_enabled = "Включён"
col_remove = "Убрать"
col_provider_state = "Сам провайдер"
add_provider = "Добавить провайдера"
add_none = "— не добавлять —"
no_links = "Провайдеров нет: организация не может отправлять."
provider_disabled_note = "провайдер выключен"

stop_heading = "Стоп-лист"
stop_lead = (
    "Номера и должники, с которыми нельзя взаимодействовать (230-ФЗ, ст. 7 и 8): сообщение им отклоняется "
    "при отправке, даже принятое раньше записи. У организаций одной группы лимитов стоп-лист общий."
)
stop_read_only = "Добавлять и убирать записи может ключ администратора."
stop_filter = "Отбор"
stop_filter_to = "Номер"
stop_filter_debtor = "Должник"
stop_filter_reason = "Причина"
stop_any_reason = "Любая"
stop_show = "Показать"
stop_reset = "Все записи"
stop_empty = "Записей нет."
stop_add_heading = "Добавить в стоп-лист"
stop_kind = "Что добавить"
stop_kind_number = "номер"
stop_kind_debtor = "должника (его ID у вас)"
stop_value = "Номер или ID должника"
stop_value_hint = "Номер в любом виде: +7 916 123-45-67; ID должника — как в поле debtor сообщений."
stop_reason_label = "Причина"
stop_note = "Примечание"
stop_note_hint = "Например, как пришёл отказ."
stop_document = "Документ"
stop_document_hint = "Номер или ссылка на документ-основание."
stop_until = "Действует до"
stop_until_hint = "Пусто — бессрочно. По истечении запись остаётся в списке, но не действует."
stop_add = "Добавить"
stop_remove = "Убрать"
stop_forever = "бессрочно"
stop_active = "действует"
stop_inactive = "истекла"
saved_stop = "Запись стоп-листа сохранена (если она уже была — обновлена)."
stop_removed = "Запись убрана из стоп-листа."
stop_gone = "Этой записи уже нет в стоп-листе."
stop_bad_key = "Неверная запись стоп-листа."
stop_more = "Следующие записи"
col_stop_key = "Номер или должник"
col_stop_reason = "Причина"
col_stop_note = "Примечание и документ"
col_stop_until = "До"
col_stop_state = "Состояние"
col_stop_created = "Добавлена"
STOP_REASONS: dict[str, str] = {
    "refused": "отказ от взаимодействия (ст. 8)",
    "representative_only": "только через представителя (ст. 8)",
    "protected": "защищённое лицо (ст. 7 ч. 1)",
    "wrong_number": "номер не должника",
    "other": "другое",
}

# --- templates ----------------------------------------------------------------------------------------
templates_title = "Шаблоны"
templates_link = "Шаблоны сообщений"
templates_lead = "Тексты с подстановками {name}; рассылка CSV подставляет в них столбцы с этими именами."
templates_read_only = "Только просмотр: менять шаблоны может ключ администратора."
back_to_entity = "← К организации"
template_placeholders = "Подстановки"
template_code = "Код"
template_code_hint = "Строчные латинские буквы, цифры, - и _ (до 64); уникален в организации."
template_text = "Текст"
template_text_hint = "Подстановка — {имя_столбца}; {{ и }} — сами фигурные скобки."
template_description = "Описание"
template_add_heading = "Новый шаблон"
template_add = "Добавить шаблон"
template_delete = "Удалить"
template_added = "Шаблон добавлен."
template_changed = "Шаблон сохранён."
template_deleted = "Шаблон удалён."
template_duplicate = "У организации уже есть шаблон с этим кодом."
no_templates = "Шаблонов нет."

# --- jobs ---------------------------------------------------------------------------------------------
jobs_title = "Рассылки из CSV"
jobs_recent = "Последние рассылки"
job_title = "Рассылка"
back_to_jobs = "← К рассылкам"
job_upload_heading = "Загрузить файл"
job_upload_lead = (
    "CSV в UTF-8 с заголовком: столбец to, затем text или подстановки шаблона; по желанию reference, "
    "send_at, valid_until, recipient_timezone, debtor."
)
job_template = "Шаблон"
job_template_hint = "Код шаблона организации; пусто — текст из столбца text."
job_name = "Название"
job_file = "Файл CSV"
job_file_hint = "До 256 МиБ."
job_upload = "Загрузить и начать"
job_not_started = "Рассылка не начата: исправьте отмеченные поля."
job_file_required = "Выберите файл."
job_unknown_entity = "Такой организации нет среди ваших."
job_too_large = "Файл слишком большой."
job_progress = "Ход"
job_counts = "принято {accepted}, с ошибками {invalid} из {rows}"
job_rows = "Строк в файле"
job_rows_unknown = "ещё считаются"
job_accepted = "Принято"
job_invalid = "С ошибками"
job_started = "Начата"
job_finished = "Закончена"
job_messages = "Сообщения рассылки по статусам"
job_auto_refresh = "Обновляется сама."
job_errors_heading = "Строки с ошибками"
job_errors_reload = "Пока рассылка идёт, список пополняется: обновите страницу."
job_more_errors = "Показаны первые 200 ошибок; все — в GET /api/v1/jobs/{id}/errors."
job_no_errors = "Ошибок нет."
job_find_messages = "Сообщения этой рассылки"
no_jobs = "Рассылок нет."
col_row = "Строка"
col_field = "Столбец"
JOB_STATUSES: dict[str, str] = {
    "pending": "ждёт начала",
    "running": "идёт",
    "done": "готова",
    "canceled": "отменена",
    "failed": "сбой",
}

# Codes of the API's field errors, as the forms show them next to the field.
FIELD_ERRORS: dict[str, str] = {
    "required": "Обязательное поле.",
    "invalid_type": "Неверный тип значения: введите число.",
    "invalid_value": "Недопустимое значение.",
    "unknown_field": "Неизвестное поле.",
    "too_short": "Слишком короткое значение.",
    "too_long": "Слишком длинное значение.",
    "too_small": "Слишком маленькое значение.",
    "too_large": "Слишком большое значение.",
    "invalid_time": "Время в виде ЧЧ:ММ, от 00:00 до 24:00.",
    "empty_window": "«С» и «до» совпадают: окно было бы пустым.",
    "crosses_midnight": "Часы 230-ФЗ не переходят через полночь: «с» должно быть раньше «до».",
    "limit_below_shorter_period": "Лимит не может быть меньше лимита более короткого периода.",
    "invalid_sender": "Имя отправителя: 1–11 латинских символов или до 15 цифр.",
    "unknown_provider": "Такого провайдера нет.",
    "duplicate": "Провайдер указан дважды.",
    "invalid_timezone": "Такого часового пояса нет.",
    "invalid_inn": "Неверный ИНН.",
    "invalid_url": "Неверный адрес.",
    "invalid_phone": "Номер не распознан.",
    "invalid_datetime": "Укажите дату и время.",
    "invalid_cursor": "Ссылка на страницу устарела.",
    "invalid_template": "Неверный шаблон: фигурная скобка без пары или неверное имя подстановки.",
    "invalid_csv": "Файл не подходит: нужен CSV в UTF-8 с заголовком и строками.",
    "not_found": "Не найдено.",
    "missing_variable": "Пустое значение подстановки.",
    "unknown_variable": "В шаблоне нет такой подстановки.",
    "duplicate_reference": "Этот reference уже был в файле.",
    "too_many_fields": "Больше ячеек, чем столбцов.",
}

# --- providers ----------------------------------------------------------------------------------------
providers_title = "Провайдеры"
provider_title = "Провайдер"
back_to_providers = "← К провайдерам"
col_kind = "Тип"
col_enabled = "Включён"
col_balance = "Баланс"
provider_settings = "Настройки"
provider_settings_lead = "Секреты скрыты (***): они хранятся зашифрованными и не показываются."
label_kind = "Тип"
label_name = "Название"
label_rate = "Не больше сообщений в секунду"
label_timeout = "Ожидание ответа, с"
no_rate = "без ограничения"
no_settings = "Настроек нет."
balance_heading = "Баланс"
balance_loading = "Запрашиваем баланс у провайдера…"
balance_failed = "Провайдер не ответил: {detail}"
balance_no_script = "Баланс загружается скриптом страницы."
balance_value = "{amount} {currency}"
state_heading = "Состояние"
provider_enabled = "Включён: сообщения передаются ему."
provider_disabled = "Выключен: сообщения ему не передаются (ждущие уходят следующему провайдеру организации)."
disable = "Выключить"
enable = "Включить"
saved_enabled = "Провайдер включён."
saved_disabled = "Провайдер выключен."
used_by = "Организации"
no_users = "Ни одна организация его не использует."
no_providers = "Провайдеров нет."

# --- errors and forms ---------------------------------------------------------------------------------
error_title = "Ошибка"
csrf_failed = "Форма устарела или пришла не из консоли. Обновите страницу и повторите."
forbidden = "Нет доступа."
not_found = "Страница не найдена."
server_error = "Внутренняя ошибка. Она записана в журнал."
unavailable = "База данных недоступна. Повторите через минуту."

STATUSES: dict[str, str] = {
    "queued": "в очереди",
    "scheduled": "запланировано",
    "sending": "отправляется",
    "sent": "отправлено",
    "delivered": "доставлено",
    "undelivered": "не доставлено",
    "failed": "ошибка",
    "rejected": "отклонено",
    "canceled": "отменено",
    "expired": "истёк срок",
}

REASONS: dict[str, str] = {
    "outside_send_window": "вне окна отправки",
    "fz_daily_limit": "лимит 230-ФЗ на день",
    "fz_weekly_limit": "лимит 230-ФЗ на неделю",
    "fz_monthly_limit": "лимит 230-ФЗ на месяц",
    "stop_list": "в стоп-листе",
    "entity_inactive": "организация отключена",
    "provider_not_allowed": "провайдер не разрешён организации",
    "no_provider_available": "нет доступного провайдера",
    "invalid_number": "неверный номер",
    "retries_exhausted": "попытки исчерпаны",
    "unknown_outcome": "исход неизвестен",
    "status_timeout": "нет отчёта о доставке",
    "canceled_by_client": "отменено клиентом",
    "text_too_long": "текст длиннее, чем принимает провайдер",
}
PROVIDER_ERROR = "ошибка провайдера, код {code}"

# Keys of an event's detail (what the sender and the reports record), for the message page.
DETAIL_KEYS: dict[str, str] = {
    "provider": "провайдер",
    "error": "ответ",
    "attempt": "попытка",
    "number_problem": "проблема с номером",
    "last_error": "последняя ошибка",
    "failover_to": "передано провайдеру",
    "source": "источник",
    "provider_status": "статус у провайдера",
    "lookup_error": "ошибка запроса статуса",
}
DETAIL_SOURCES: dict[str, str] = {
    "send": "ответ на отправку",
    "report": "отчёт о доставке",
    "poll": "запрос статуса",
}


def field_error(code: str, message: str) -> str:
    """An API field error as a form shows it: our words for its code, else the API's own message."""
    return FIELD_ERRORS.get(code, message)


def stop_reason(code: str) -> str:
    return STOP_REASONS.get(code, code)


def job_status(code: str) -> str:
    return JOB_STATUSES.get(code, code)


def status(code: str | None) -> str:
    return STATUSES.get(code or "", code or no_value)


def reason(code: str | None) -> str:
    if not code:
        return no_value
    if code.startswith("provider_error:"):
        return PROVIDER_ERROR.format(code=code.partition(":")[2])
    return REASONS.get(code, code)


def detail_key(key: str) -> str:
    return DETAIL_KEYS.get(key, key)


def detail_value(key: str, value: Any) -> str:
    if key == "source" and isinstance(value, str):
        return DETAIL_SOURCES.get(value, value)
    if isinstance(value, bool):
        return "да" if value else "нет"
    return no_value if value is None else str(value)
